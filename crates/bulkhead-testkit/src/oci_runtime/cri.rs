//! A CRI client as the kubelet is one: the `runtime.v1` services of the `k8s-cri` crate over tonic on
//! containerd's unix socket, with blocking helpers for the calls the tests make. Pods are configured as
//! the kubelet configures a plain pod: pod network, pod IPC, a PID namespace per container, logs under
//! a directory of the pod's own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatusRequest, CreateContainerRequest,
    ExecSyncRequest, ImageSpec, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListPodSandboxRequest, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PullImageRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest,
};
pub use k8s_cri::v1::{ContainerState, ContainerStatus};
use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::output::HANG_LIMIT;

/// What a test asks of a pod.
pub struct PodSpec<'a> {
    pub name: &'a str,
    /// The runtime handler (`bulkhead`, `bulkhead-vm`); empty: containerd's default.
    pub handler: &'a str,
    pub annotations: &'a [(&'a str, &'a str)],
}

/// A pod the client started: its id and the config later calls must repeat.
pub struct Pod {
    pub id: String,
    config: PodSandboxConfig,
}

/// What ExecSync returned.
#[derive(Debug)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub struct Cri {
    rt: Runtime,
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    logs: PathBuf,
}

impl Cri {
    /// Connects to the CRI services on `socket`; pods' log directories go under `logs`.
    pub fn connect(socket: &Path, logs: &Path) -> Cri {
        Cri::try_connect(socket, logs).expect("connecting to the CRI socket")
    }

    /// As [`Cri::connect`], the error as text.
    pub fn try_connect(socket: &Path, logs: &Path) -> Result<Cri, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let path = socket.to_path_buf();
        let channel = rt
            .block_on(
                // The URI is required by tonic and unused: the connector dials the socket.
                Endpoint::from_static("http://[::]")
                    .timeout(HANG_LIMIT)
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(stream))
                        }
                    })),
            )
            .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
        Ok(Cri {
            rt,
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            logs: logs.to_path_buf(),
        })
    }

    /// RunPodSandbox with the spec's handler and annotations.
    pub fn run_pod(&mut self, spec: &PodSpec) -> Result<Pod, tonic::Status> {
        let log_directory = self.logs.join(spec.name);
        std::fs::create_dir_all(&log_directory).expect("pod log dir");
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: spec.name.to_string(),
                uid: format!("uid-{}", spec.name),
                namespace: "default".to_string(),
                attempt: 0,
            }),
            hostname: spec.name.to_string(),
            log_directory: log_directory.to_string_lossy().into_owned(),
            annotations: pairs(spec.annotations),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: spec.handler.to_string(),
        };
        let id = self
            .rt
            .block_on(self.runtime.run_pod_sandbox(request))?
            .into_inner()
            .pod_sandbox_id;
        Ok(Pod { id, config })
    }

    /// PullImage; returns the image reference containerd resolved.
    pub fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        let request = PullImageRequest {
            image: Some(image_spec(image)),
            ..Default::default()
        };
        Ok(self
            .rt
            .block_on(self.images.pull_image(request))?
            .into_inner()
            .image_ref)
    }

    /// CreateContainer in `pod` running `command` of `image`, logging to `NAME.log` in the pod's log
    /// directory.
    pub fn create_container(
        &mut self,
        pod: &Pod,
        name: &str,
        image: &str,
        command: &[&str],
    ) -> Result<String, tonic::Status> {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(image_spec(image)),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            // The kubelet repeats the pod's namespace modes per container; without them (all POD)
            // containerd would have the container join the sandbox's PID namespace.
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        Ok(self
            .rt
            .block_on(self.runtime.create_container(request))?
            .into_inner()
            .container_id)
    }

    pub fn start_container(&mut self, id: &str) -> Result<(), tonic::Status> {
        let request = StartContainerRequest {
            container_id: id.to_string(),
        };
        self.rt.block_on(self.runtime.start_container(request))?;
        Ok(())
    }

    /// ExecSync of `cmd` with a timeout in seconds.
    pub fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<ExecResult, tonic::Status> {
        let request = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        };
        let r = self
            .rt
            .block_on(self.runtime.exec_sync(request))?
            .into_inner();
        Ok(ExecResult {
            exit_code: r.exit_code,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        })
    }

    pub fn status(&mut self, id: &str) -> Result<ContainerStatus, tonic::Status> {
        let request = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        self.rt
            .block_on(self.runtime.container_status(request))?
            .into_inner()
            .status
            .ok_or_else(|| tonic::Status::internal("ContainerStatus without a status"))
    }

    /// Polls ContainerStatus until the container has exited (hang-guarded); returns the final status.
    pub fn wait_exited(&mut self, id: &str) -> ContainerStatus {
        let deadline = std::time::Instant::now() + HANG_LIMIT;
        loop {
            let status = self.status(id).expect("ContainerStatus");
            if status.state == ContainerState::ContainerExited as i32 {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "container {id} never exited: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop_container(&mut self, id: &str, timeout: i64) -> Result<(), tonic::Status> {
        let request = StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        self.rt.block_on(self.runtime.stop_container(request))?;
        Ok(())
    }

    pub fn stop_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let request = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.rt.block_on(self.runtime.stop_pod_sandbox(request))?;
        Ok(())
    }

    pub fn remove_pod(&mut self, id: &str) -> Result<(), tonic::Status> {
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.rt.block_on(self.runtime.remove_pod_sandbox(request))?;
        Ok(())
    }

    /// Ids of the pods the daemon knows, in any state.
    pub fn pod_ids(&mut self) -> Result<Vec<String>, tonic::Status> {
        let request = ListPodSandboxRequest { filter: None };
        Ok(self
            .rt
            .block_on(self.runtime.list_pod_sandbox(request))?
            .into_inner()
            .items
            .into_iter()
            .map(|p| p.id)
            .collect())
    }

    /// Stops and removes every pod (cleanup: errors are ignored).
    pub fn remove_all_pods(&mut self) {
        for id in self.pod_ids().unwrap_or_default() {
            let _ = self.stop_pod(&id);
            let _ = self.remove_pod(&id);
        }
    }

    /// The lines a container logged, read from the CRI log file (`TIME STREAM TAG TEXT` per line) of the
    /// status's log path: `(stream, text)` pairs, partial lines (`P`) joined to what follows.
    pub fn log_lines(status: &ContainerStatus) -> Vec<(String, String)> {
        let raw = std::fs::read_to_string(&status.log_path)
            .unwrap_or_else(|e| panic!("reading the CRI log {}: {e}", status.log_path));
        let mut lines = Vec::new();
        let mut partial = String::new();
        for line in raw.lines() {
            let mut fields = line.splitn(4, ' ');
            let (Some(_time), Some(stream), Some(tag), text) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("malformed CRI log line {line:?}");
            };
            partial.push_str(text.unwrap_or(""));
            if tag == "F" {
                lines.push((stream.to_string(), std::mem::take(&mut partial)));
            }
        }
        lines
    }
}

/// A plain pod's namespaces, as the kubelet sets them: the pod's network and IPC, a PID namespace per
/// container (no `shareProcessNamespace`).
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

fn pairs(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

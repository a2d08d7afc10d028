//! containerd's CRI plugin driven the way the kubelet drives it (a gRPC client on its socket), with the
//! runtime handlers `bulkhead` (process isolation) and `bulkhead-vm` (VM isolation): PullImage from a
//! local registry, RunPodSandbox, CreateContainer, StartContainer, ExecSync, ContainerStatus, the CRI
//! log files, StopPodSandbox and RemovePodSandbox; two containers of one pod reaching each other on
//! localhost; a VM pod on the guest's kernel. `BULKHEAD_OCI_TEST_RUNTIME=/usr/sbin/runc` runs the same
//! against runc (VM assertions skipped).

use std::path::Path;

use bulkhead_testkit::oci_runtime::cri::ContainerState;
use bulkhead_testkit::oci_runtime::{host_kernel, Containerd, Cri, PodSpec, RuntimeLinks};
use bulkhead_testkit::vm_lock;

fn links() -> RuntimeLinks {
    RuntimeLinks::for_tests(Path::new(env!("CARGO_BIN_EXE_bulkhead")))
}

/// Fetches `/motd` of the pod's web server on localhost, retrying while it starts.
const FETCH: &str = "for i in $(seq 100); do \
                     wget -q -O - http://127.0.0.1:8080/motd && exit 0; sleep 0.1; done; exit 1";

fn state(cri: &mut Cri, id: &str) -> i32 {
    cri.status(id).expect("ContainerStatus").state
}

/// Stops and removes the pod, and checks the daemon forgot it.
fn tear_down(cri: &mut Cri, pod: &str) {
    cri.stop_pod(pod).expect("StopPodSandbox");
    cri.remove_pod(pod).expect("RemovePodSandbox");
    assert!(
        !cri.pod_ids()
            .expect("ListPodSandbox")
            .contains(&pod.to_string()),
        "the removed pod is still listed"
    );
}

#[test]
fn cri_process_pod() {
    let links = links();
    let containerd = Containerd::start(&links);
    let mut cri = containerd.cri();
    let image = containerd.busybox();
    let image_ref = cri.pull(&image).expect("PullImage");
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");

    let pod = cri
        .run_pod(&PodSpec {
            name: "web",
            handler: "bulkhead",
            annotations: &[],
        })
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", containerd.log_tail()));
    let server = cri
        .create_container(
            &pod,
            "server",
            &image,
            &["sh", "-c", "echo serving; exec httpd -f -p 8080 -h /etc"],
        )
        .expect("CreateContainer");
    assert_eq!(
        state(&mut cri, &server),
        ContainerState::ContainerCreated as i32
    );
    cri.start_container(&server)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", containerd.log_tail()));
    assert_eq!(
        state(&mut cri, &server),
        ContainerState::ContainerRunning as i32
    );
    let client = cri
        .create_container(&pod, "client", &image, &["sleep", "1000"])
        .expect("CreateContainer");
    cri.start_container(&client).expect("StartContainer");

    // The pod's containers share its network namespace: localhost is the pod's.
    let fetched = cri
        .exec_sync(&client, &["sh", "-c", FETCH], 60)
        .expect("ExecSync");
    assert_eq!(fetched.exit_code, 0, "{fetched:?}");
    assert!(
        fetched.stdout.contains("bulkhead demo image"),
        "{fetched:?}"
    );

    let exec = cri
        .exec_sync(
            &client,
            &["sh", "-c", "echo to-out; echo to-err >&2; uname -r; exit 3"],
            60,
        )
        .expect("ExecSync");
    assert_eq!(exec.exit_code, 3, "{exec:?}");
    assert_eq!(exec.stdout, format!("to-out\n{}\n", host_kernel()));
    assert_eq!(exec.stderr, "to-err\n");

    // A container that ends by itself: its exit code and both streams in the CRI log file.
    let once = cri
        .create_container(
            &pod,
            "once",
            &image,
            &["sh", "-c", "echo to-log; echo to-errlog >&2; exit 2"],
        )
        .expect("CreateContainer");
    cri.start_container(&once).expect("StartContainer");
    let status = cri.wait_exited(&once);
    assert_eq!(status.exit_code, 2, "{status:?}");
    let lines = Cri::log_lines(&status);
    assert!(
        lines.contains(&("stdout".into(), "to-log".into()))
            && lines.contains(&("stderr".into(), "to-errlog".into())),
        "{lines:?}"
    );
    let served = Cri::log_lines(&cri.status(&server).expect("ContainerStatus"));
    assert_eq!(served, [("stdout".to_string(), "serving".to_string())]);

    tear_down(&mut cri, &pod.id);
}

/// A pod on the `bulkhead-vm` handler runs on the guest's kernel; the rest of the CRI flow as above.
#[test]
fn vm_cri_pod() {
    let _vm = vm_lock();
    let links = links();
    let containerd = Containerd::start(&links);
    let mut cri = containerd.cri();
    let image = containerd.busybox();
    cri.pull(&image).expect("PullImage");
    let pod = cri
        .run_pod(&PodSpec {
            name: "guest",
            handler: "bulkhead-vm",
            annotations: &[],
        })
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", containerd.log_tail()));
    let app = cri
        .create_container(
            &pod,
            "app",
            &image,
            &["sh", "-c", "uname -r; exec sleep 1000"],
        )
        .expect("CreateContainer");
    cri.start_container(&app)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", containerd.log_tail()));
    let exec = cri
        .exec_sync(&app, &["sh", "-c", "uname -r; exit 5"], 120)
        .expect("ExecSync");
    assert_eq!(exec.exit_code, 5, "{exec:?}");
    let kernel = exec.stdout.trim().to_string();
    if links.is_bulkhead() {
        assert_ne!(kernel, host_kernel(), "the VM pod runs the guest's kernel");
    }
    let status = cri.status(&app).expect("ContainerStatus");
    assert_eq!(status.state, ContainerState::ContainerRunning as i32);
    assert_eq!(Cri::log_lines(&status), [("stdout".to_string(), kernel)]);
    cri.stop_container(&app, 10).expect("StopContainer");
    assert_eq!(
        cri.wait_exited(&app).state,
        ContainerState::ContainerExited as i32
    );
    tear_down(&mut cri, &pod.id);
}

/// A `bulkhead-vm` pod runs one container: each container is its own VM, and a pod's network namespace
/// serves one VM, so a second container fails to start, with the reason in its CRI log rather than a
/// half-working network (docs/KUBERNETES.md, "Not supported"). When a pod's containers share one VM,
/// this becomes the localhost test of `cri_process_pod`.
#[test]
fn vm_cri_pod_second_container_fails_clearly() {
    let _vm = vm_lock();
    let links = links();
    if !links.is_bulkhead() {
        return;
    }
    let containerd = Containerd::start(&links);
    let mut cri = containerd.cri();
    let image = containerd.busybox();
    cri.pull(&image).expect("PullImage");
    let pod = cri
        .run_pod(&PodSpec {
            name: "guests",
            handler: "bulkhead-vm",
            annotations: &[],
        })
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", containerd.log_tail()));
    let first = cri
        .create_container(&pod, "first", &image, &["sleep", "1000"])
        .expect("CreateContainer");
    cri.start_container(&first).expect("StartContainer");
    let second = cri
        .create_container(&pod, "second", &image, &["sleep", "1000"])
        .expect("CreateContainer");
    cri.start_container(&second).expect("StartContainer");
    let status = cri.wait_exited(&second);
    assert_eq!(status.exit_code, 125, "{status:?}");
    let lines = Cri::log_lines(&status);
    assert!(
        lines
            .iter()
            .any(|(_, text)| text.contains("the namespace already serves another VM")),
        "{lines:?}"
    );
    assert_eq!(
        cri.status(&first).expect("ContainerStatus").state,
        ContainerState::ContainerRunning as i32,
        "the first container keeps running"
    );
    tear_down(&mut cri, &pod.id);
}

//! The facade's network operations: `network create/ls/inspect/rm/connect/disconnect`.

use crate::events::{self, EventKind};
use crate::networks::{
    self, EndpointRecord, NetworkAttachment, NetworkCreateOptions, NetworkRecord,
};
use crate::{Engine, EngineError, Status};
use std::collections::BTreeMap;

/// A network and the containers running on it.
#[derive(Debug, Clone)]
pub struct NetworkDetails {
    pub record: NetworkRecord,
    pub endpoints: Vec<EndpointRecord>,
}

impl Engine {
    pub fn network_create(
        &self,
        opts: &NetworkCreateOptions,
    ) -> Result<NetworkRecord, EngineError> {
        let record = networks::create(&self.layout, opts, self.config.bridge_subnet)?;
        network_event(self, &record, "create", None);
        Ok(record)
    }

    pub fn network_list(&self) -> Result<Vec<NetworkRecord>, EngineError> {
        networks::list(&self.layout, self.config.bridge_subnet)
    }

    pub fn network_inspect(&self, key: &str) -> Result<NetworkDetails, EngineError> {
        let record = networks::find(&self.layout, key, self.config.bridge_subnet)?;
        Ok(NetworkDetails {
            endpoints: networks::endpoints(&self.layout, &record.id)?,
            record,
        })
    }

    /// Removes a network no container uses; returns its record.
    pub fn network_remove(&self, key: &str) -> Result<NetworkRecord, EngineError> {
        let record = networks::remove(&self.layout, key, self.config.bridge_subnet)?;
        network_event(self, &record, "destroy", None);
        Ok(record)
    }

    /// Attaches a stopped, bridged container to one more network (its next `ethN`).
    pub fn network_connect(
        &self,
        network: &str,
        container: &str,
        aliases: &[String],
    ) -> Result<(), EngineError> {
        let record = networks::find(&self.layout, network, self.config.bridge_subnet)?;
        let mut c = self.find(container)?;
        let _lock = c.lock()?;
        self.check_reattachable(&c)?;
        if c.config.networks.iter().any(|a| a.network_id == record.id) {
            return Err(EngineError::InvalidOption(format!(
                "container {} is already connected to network {}",
                c.config.name, record.name
            )));
        }
        if c.config.networks.len() >= 16 {
            return Err(EngineError::InvalidOption(
                "a container has at most 16 networks".into(),
            ));
        }
        c.config.networks.push(NetworkAttachment {
            network_id: record.id.clone(),
            aliases: aliases.to_vec(),
        });
        if c.config.network_mode == "none" {
            c.config.network_mode = record.name.clone();
        }
        c.save_config()?;
        network_event(self, &record, "connect", Some(c.id()));
        Ok(())
    }

    /// Detaches a stopped container from a network.
    pub fn network_disconnect(&self, network: &str, container: &str) -> Result<(), EngineError> {
        let record = networks::find(&self.layout, network, self.config.bridge_subnet)?;
        let mut c = self.find(container)?;
        let _lock = c.lock()?;
        self.check_reattachable(&c)?;
        let before = c.config.networks.len();
        c.config.networks.retain(|a| a.network_id != record.id);
        if c.config.networks.len() == before {
            return Err(EngineError::InvalidOption(format!(
                "container {} is not connected to network {}",
                c.config.name, record.name
            )));
        }
        if c.config.networks.is_empty() {
            c.config.network_mode = "none".into();
            c.config.ports.clear();
        }
        c.save_config()?;
        network_event(self, &record, "disconnect", Some(c.id()));
        Ok(())
    }

    fn check_reattachable(&self, c: &crate::Container) -> Result<(), EngineError> {
        if c.state.status == Status::Running {
            return Err(EngineError::WrongState {
                id: c.config.id.clone(),
                status: c.state.status.to_string(),
                what: "networks can only be connected or disconnected while it is stopped".into(),
            });
        }
        if c.config.network_mode == "host" || c.config.network_mode.starts_with("container:") {
            return Err(EngineError::InvalidOption(format!(
                "container {} uses network mode {}, which takes no other network",
                c.config.name, c.config.network_mode
            )));
        }
        Ok(())
    }
}

/// A network event with docker's attributes: `name`, `type`, and for (dis)connect the `container`.
fn network_event(engine: &Engine, record: &NetworkRecord, action: &str, container: Option<&str>) {
    let mut attributes = BTreeMap::from([
        ("name".to_string(), record.name.clone()),
        ("type".to_string(), record.driver.clone()),
    ]);
    if let Some(id) = container {
        attributes.insert("container".into(), id.to_string());
    }
    events::record(
        &engine.layout,
        EventKind::Network,
        action,
        &record.id,
        attributes,
    );
}

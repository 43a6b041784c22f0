//! The state of a systemd unit, asked of systemd itself over D-Bus (zbus), so that
//! `ensure` can tell "the kubelet is still starting" from "kubelet.service has failed"
//! and say which in the journal: the kubelet's healthz port alone cannot.
//!
//! For the kubelet, read-only: `GetUnit`, then the unit's `ActiveState` and `SubState`;
//! a failed kubelet is the operator's (or its unit's `Restart=`). The one unit kubeboot
//! stops and starts is a host-run etcd's, around its restore or join
//! ([`crate::hostetcd`]): `StopUnit`/`StartUnit` in `replace` mode, then the unit's state
//! is polled until the job's end shows, and `Reload` after a drop-in changed.

use zbus::zvariant::OwnedObjectPath;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload(&self) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait Unit {
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
trait Service {
    #[zbus(property)]
    fn environment(&self) -> zbus::Result<Vec<String>>;
    #[zbus(property)]
    fn environment_files(&self) -> zbus::Result<Vec<(String, bool)>>;
}

/// What systemd says about a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitState {
    /// Not loaded: systemd does not know it (not installed, or not enabled and not
    /// started since boot).
    NotLoaded,
    Loaded {
        active: String,
        sub: String,
    },
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        matches!(self, UnitState::Loaded { active, .. } if active == "active")
    }

    /// A unit that will not come up by itself: failed, or stopped and not restarting.
    pub fn is_down_for_good(&self) -> bool {
        match self {
            UnitState::NotLoaded => true,
            UnitState::Loaded { active, .. } => active == "failed" || active == "inactive",
        }
    }
}

impl std::fmt::Display for UnitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnitState::NotLoaded => f.write_str("not loaded"),
            UnitState::Loaded { active, sub } => write!(f, "{active} ({sub})"),
        }
    }
}

/// Connects to the bus at `address` (a D-Bus address such as
/// `unix:path=/run/dbus/system_bus_socket`), or the system bus when `None`.
pub async fn connect(address: Option<&str>) -> Result<zbus::Connection, String> {
    let conn = match address {
        Some(a) => match zbus::connection::Builder::address(a) {
            Ok(b) => b.build().await,
            Err(e) => Err(e),
        },
        None => zbus::Connection::system().await,
    };
    conn.map_err(|e| format!("D-Bus {}: {e}", address.unwrap_or("system bus")))
}

/// The state of `unit` (e.g. `kubelet.service`).
pub async fn unit_state(conn: &zbus::Connection, unit: &str) -> Result<UnitState, String> {
    let err = |e: zbus::Error| format!("systemd, unit {unit}: {e}");
    let manager = ManagerProxy::new(conn).await.map_err(err)?;
    let path = match manager.get_unit(unit).await {
        Ok(p) => p,
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
        {
            return Ok(UnitState::NotLoaded);
        }
        Err(e) => return Err(err(e)),
    };
    // One read, so no property cache (which would subscribe to change signals).
    let proxy = UnitProxy::builder(conn)
        .path(path)
        .map_err(err)?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(err)?;
    Ok(UnitState::Loaded {
        active: proxy.active_state().await.map_err(err)?,
        sub: proxy.sub_state().await.map_err(err)?,
    })
}

/// Starts (`start` true) or stops `unit` and waits, polling every `poll`, until its state
/// shows the job's end: `active` after a start, `inactive` or `failed` after a stop.
pub async fn start_stop(
    conn: &zbus::Connection,
    unit: &str,
    start: bool,
    deadline: std::time::Instant,
    poll: std::time::Duration,
) -> Result<(), String> {
    let verb = if start { "start" } else { "stop" };
    let err = |e: zbus::Error| format!("systemd, {verb} {unit}: {e}");
    let manager = ManagerProxy::new(conn).await.map_err(err)?;
    if start {
        manager.start_unit(unit, "replace").await.map_err(err)?;
    } else {
        manager.stop_unit(unit, "replace").await.map_err(err)?;
    }
    loop {
        let state = unit_state(conn, unit).await?;
        let done = match &state {
            UnitState::Loaded { active, .. } if start => {
                if active == "failed" {
                    return Err(format!("systemd: {unit} failed to start ({state})"));
                }
                active == "active"
            }
            UnitState::Loaded { active, .. } => active == "inactive" || active == "failed",
            UnitState::NotLoaded => !start,
        };
        if done {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "systemd: {unit} did not {verb} in time; it is {state}"
            ));
        }
        tokio::time::sleep(poll).await;
    }
}

/// `systemctl daemon-reload`: systemd reads unit files and drop-ins again.
pub async fn daemon_reload(conn: &zbus::Connection) -> Result<(), String> {
    let err = |e: zbus::Error| format!("systemd, daemon-reload: {e}");
    ManagerProxy::new(conn)
        .await
        .map_err(err)?
        .reload()
        .await
        .map_err(err)
}

/// A service's `Environment=` (specifiers already resolved by systemd, as its processes
/// get them) and its `EnvironmentFile=`s in order, each with whether a missing file is
/// ignored (`-` prefix).
pub async fn unit_environment(
    conn: &zbus::Connection,
    unit: &str,
) -> Result<(Vec<String>, Vec<(String, bool)>), String> {
    let err = |e: zbus::Error| format!("systemd, unit {unit}: {e}");
    let path = ManagerProxy::new(conn)
        .await
        .map_err(err)?
        .get_unit(unit)
        .await
        .map_err(err)?;
    let proxy = ServiceProxy::builder(conn)
        .path(path)
        .map_err(err)?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .map_err(err)?;
    Ok((
        proxy.environment().await.map_err(err)?,
        proxy.environment_files().await.map_err(err)?,
    ))
}

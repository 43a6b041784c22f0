//! The state of a systemd unit, asked of systemd itself over D-Bus (zbus), so that
//! `ensure` can tell "the kubelet is still starting" from "kubelet.service has failed"
//! and say which in the journal: the kubelet's healthz port alone cannot.
//!
//! Read-only: `GetUnit`, then the unit's `ActiveState` and `SubState`. Nothing is
//! started or stopped: a failed kubelet is the operator's (or its unit's `Restart=`).

use zbus::zvariant::OwnedObjectPath;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Manager {
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
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

//! `fake-kubelet`: runs static pods (and, with `--kubeconfig`, api-server pods) as local
//! processes so kubeboot's start/recover/checkpointer flows can be tested on a machine
//! without a kubelet. The logic is in `kubeboot_testkit::kubelet`; this is flags, the
//! runtime and signals. Exit codes: 0 after SIGTERM/SIGINT, 2 bad flags, 1 other errors.

use std::process::ExitCode;

use kubeboot_testkit::kubelet::{self, Config, config::USAGE};

fn main() -> ExitCode {
    let mut cfg = match Config::from_args(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            kubeboot_testkit::note!("fake-kubelet: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = cfg.load_image_map() {
        kubeboot_testkit::note!("fake-kubelet: {e:#}");
        return ExitCode::from(2);
    }
    kubeboot_testkit::daemon::run_until_signal("fake-kubelet", |shutdown| {
        kubelet::run(cfg, shutdown)
    })
}

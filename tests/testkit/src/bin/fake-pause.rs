//! `fake-pause`: stands in for an image whose process the tests never talk to
//! (kube-proxy, and the pod checkpointer until `kubeboot checkpoint` exists). Like the
//! pause container it accepts any arguments, does nothing, and exits 0 on SIGTERM or
//! SIGINT.

use std::process::ExitCode;

fn main() -> ExitCode {
    kubeboot_testkit::daemon::run_until_signal("fake-pause", |shutdown| async {
        shutdown.await;
        Ok(())
    })
}

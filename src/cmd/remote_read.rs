//! `--remote-option` and the download, for the commands that take a backup by URL
//! (`recover --etcd-backup-file`, `inspect`, `backup verify`; `src/backup/fetch.rs`).

use std::path::Path;

use clap::Args;

use super::{Exit, Failure, usage};
use crate::backup::fetch::{self, FetchError, Fetched};

#[derive(Debug, Clone, Default, Args)]
pub struct RemoteRead {
    /// For a backup given by URL (s3://bucket/prefix/NAME|latest, gs://…, az://…,
    /// file:///dir/NAME|latest): an option of the object store, KEY=VALUE, as `backup
    /// --remote-option` takes it (aws_endpoint, google_service_account,
    /// azure_storage_account_name, …); credentials also come from the AWS_*, GOOGLE_*
    /// or AZURE_* variables or instance metadata. Repeatable.
    #[arg(long = "remote-option", value_name = "KEY=VALUE")]
    pub remote_option: Vec<String>,
}

impl RemoteRead {
    /// Downloads the backup `arg` names when it is a URL, into a private dir under
    /// `base`; `None` for a path. A URL or option that cannot be used is exit 2; a store
    /// that cannot be read, or a backup in it that is missing or damaged, `unreadable`
    /// (the command's code for a source it cannot read).
    pub fn fetch_if_url(
        &self,
        arg: &Path,
        base: &Path,
        unreadable: Exit,
    ) -> Result<Option<Fetched>, Failure> {
        let Some(url) = arg.to_str().filter(|a| fetch::is_url(a)) else {
            return Ok(None);
        };
        let options = fetch::parse_options(&self.remote_option).map_err(usage)?;
        let fetched = fetch::fetch_blocking(url, &options, base).map_err(|e| Failure {
            code: match e {
                FetchError::Usage(_) => Exit::Usage,
                FetchError::Unreadable(_) => unreadable,
            },
            error: e.into(),
        })?;
        tracing::info!(
            backup = %fetched.address,
            revision = fetched.manifest.revision,
            "downloaded and checked against its backup.json into a private dir, removed when the command ends"
        );
        Ok(Some(fetched))
    }
}

//! The object store a `--remote` URL names, built with the `object_store` crate's own
//! builders ([`super::remote::Remote::open`] calls [`open`]):
//!
//! - `s3://bucket/prefix` (and the crate's other S3 forms): Amazon S3 or an
//!   S3-compatible store, `AWS_*` variables, instance metadata;
//! - `gs://bucket/prefix`: Google Cloud Storage, `GOOGLE_*` variables (a service
//!   account file or key), the application default credentials, instance metadata;
//! - `az://container/prefix`, `azure://`, `adl://`, `abfs[s]://container/prefix` or
//!   `abfs[s]://container@account.dfs.core.windows.net/prefix`, and
//!   `https://account.blob.core.windows.net/container/prefix`: Azure Blob Storage,
//!   `AZURE_*` variables, instance metadata;
//! - anything else the crate parses (`file:///dir`) as the crate does.
//!
//! `--remote-option` keys are the crate's config keys of that store; one it does not
//! know is refused, by name. What a GCS or Azure builder finds wrong only when it opens
//! the store (a service-account file that is missing or is not one, an access key that
//! is not base64, an option's value) is not a usage error: the store is then one whose
//! every call fails with that message ([`NotOpened`]), so `backup` still keeps its local
//! copy, warns and counts a failed upload, as it does when the store refuses a
//! credential. Only the URL's form is checked at once, by the same builder with a
//! dummy credential that reads nothing.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreScheme, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use url::Url;

/// The store `url` names and the prefix backups go under, with `options` (the crate's
/// config keys for that store). `Err` is one line naming the URL or the option.
pub fn open(
    url: &str,
    options: &[(String, String)],
) -> Result<(Box<dyn ObjectStore>, ObjectPath), String> {
    // reqwest's rustls takes the process's provider: the project's, ring. Already
    // installed (a second open) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parsed = Url::parse(url).map_err(|e| format!("--remote {url}: {e}"))?;
    let at = |e: &dyn std::fmt::Display| format!("--remote {url}: {e}");
    match ObjectStoreScheme::parse(&parsed) {
        Ok((ObjectStoreScheme::AmazonS3, prefix)) => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_url(url);
            for (k, v) in options {
                b = b.with_config(key(k, "an S3")?, v);
            }
            Ok((Box::new(b.build().map_err(|e| at(&e))?), prefix))
        }
        Ok((ObjectStoreScheme::GoogleCloudStorage, prefix)) => {
            let keys: Vec<(GoogleConfigKey, &String)> = options
                .iter()
                .map(|(k, v)| Ok((key(k, "a Google Cloud Storage")?, v)))
                .collect::<Result<_, String>>()?;
            // The URL's form, with a credential that reads no file and asks no server.
            GoogleCloudStorageBuilder::new()
                .with_url(url)
                .with_bearer_token("")
                .build()
                .map_err(|e| at(&e))?;
            let b = keys.into_iter().fold(
                GoogleCloudStorageBuilder::from_env().with_url(url),
                |b, (k, v)| b.with_config(k, v),
            );
            Ok((or_not_opened(b.build(), "GCS", url), prefix))
        }
        Ok((ObjectStoreScheme::MicrosoftAzure, prefix)) => {
            let keys: Vec<(AzureConfigKey, &String)> = options
                .iter()
                .map(|(k, v)| Ok((key(k, "an Azure")?, v)))
                .collect::<Result<_, String>>()?;
            MicrosoftAzureBuilder::new()
                .with_url(url)
                .with_account("account")
                .with_bearer_token_authorization("")
                .build()
                .map_err(|e| at(&e))?;
            let b = keys.into_iter().fold(
                MicrosoftAzureBuilder::from_env().with_url(url),
                |b, (k, v)| b.with_config(k, v),
            );
            Ok((or_not_opened(b.build(), "MicrosoftAzure", url), prefix))
        }
        _ => object_store::parse_url_opts(&parsed, options.iter().map(|(k, v)| (k, v.clone())))
            .map_err(|e| at(&e)),
    }
}

/// `k` as a config key of the store (`which`: "an S3", …); `Err` names the option.
fn key<K: std::str::FromStr>(k: &str, which: &str) -> Result<K, String> {
    k.to_ascii_lowercase()
        .parse()
        .map_err(|_| format!("--remote-option {k}: not {which} option of the object_store crate"))
}

/// The built store, or one that fails every call with why it was not built.
fn or_not_opened<S: ObjectStore>(
    built: object_store::Result<S>,
    store: &'static str,
    url: &str,
) -> Box<dyn ObjectStore> {
    match built {
        Ok(s) => Box::new(s),
        Err(e) => {
            // The crate's `Generic` wraps the builder's own message: keep that one.
            let why = match e {
                object_store::Error::Generic { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            Box::new(NotOpened {
                store,
                url: url.to_string(),
                why: Arc::from(why),
            })
        }
    }
}

/// A store whose builder refused its credentials or options: every call fails with the
/// builder's message, and nothing is sent anywhere.
#[derive(Debug)]
pub struct NotOpened {
    store: &'static str,
    url: String,
    why: Arc<str>,
}

impl std::fmt::Display for NotOpened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (not opened)", self.url)
    }
}

impl NotOpened {
    fn error(&self) -> object_store::Error {
        object_store::Error::Generic {
            store: self.store,
            source: format!("the store could not be opened: {}", self.why).into(),
        }
    }

    fn fail<T>(&self) -> object_store::Result<T> {
        Err(self.error())
    }
}

#[async_trait::async_trait]
impl ObjectStore for NotOpened {
    async fn put_opts(
        &self,
        _: &ObjectPath,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.fail()
    }

    async fn put_multipart_opts(
        &self,
        _: &ObjectPath,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.fail()
    }

    async fn get_opts(&self, _: &ObjectPath, _: GetOptions) -> object_store::Result<GetResult> {
        self.fail()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        let e = self.error().to_string();
        locations
            .map(move |_| {
                Err(object_store::Error::Generic {
                    store: "kubeboot",
                    source: e.clone().into(),
                })
            })
            .boxed()
    }

    fn list(&self, _: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        stream::once(std::future::ready(self.fail())).boxed()
    }

    async fn list_with_delimiter(
        &self,
        _: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.fail()
    }

    async fn copy_opts(
        &self,
        _: &ObjectPath,
        _: &ObjectPath,
        _: CopyOptions,
    ) -> object_store::Result<()> {
        self.fail()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_store_takes_its_own_keys_and_names_a_wrong_one() {
        let err = open("gs://b/p", &opts(&[("aws_region", "x")])).err();
        assert_eq!(
            err.as_deref(),
            Some(
                "--remote-option aws_region: not a Google Cloud Storage option of the object_store crate"
            )
        );
        let err = open("az://c/p", &opts(&[("google_service_account_key", "{}")])).err();
        assert_eq!(
            err.as_deref(),
            Some(
                "--remote-option google_service_account_key: not an Azure option of the object_store crate"
            )
        );
        let err = open("s3://b/p", &opts(&[("azure_storage_account_key", "x")])).err();
        assert!(err.is_some_and(|e| e.starts_with("--remote-option azure_storage_account_key:")));
    }

    #[test]
    fn the_prefix_is_the_path_after_the_bucket_or_container() {
        let dummy_gcs = opts(&[("google_bearer_token", "t")]);
        let azure = opts(&[
            ("azure_storage_account_name", "acct"),
            ("azure_storage_token", "t"),
        ]);
        for (url, o, prefix) in [
            ("gs://b/cluster-a", &dummy_gcs, "cluster-a"),
            ("gs://b", &dummy_gcs, ""),
            ("az://c/x/y", &azure, "x/y"),
            ("azure://c/x", &azure, "x"),
            ("abfs://c/x", &azure, "x"),
            ("abfss://c@acct.dfs.core.windows.net/x/y", &azure, "x/y"),
            ("https://acct.blob.core.windows.net/c/x", &azure, "x"),
        ] {
            let (_, p) = open(url, o).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(p.as_ref(), prefix, "{url}");
        }
    }

    #[test]
    fn a_url_the_builder_does_not_take_is_refused_at_once() {
        // A dotted container: the crate reads it as a host, not a container.
        let err = open("az://a.b/p", &[]).err().unwrap_or_default();
        assert!(err.starts_with("--remote az://a.b/p: "), "{err}");
    }

    #[test]
    fn a_credential_the_builder_cannot_read_fails_each_call_naming_why() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let secret = "not-base64-but-secret!";
        for (url, o) in [
            (
                "gs://b/p",
                opts(&[("google_service_account", "/nonexistent/kubeboot-gcs.json")]),
            ),
            (
                "az://c/p",
                opts(&[
                    ("azure_storage_account_name", "acct"),
                    ("azure_storage_account_key", secret),
                ]),
            ),
        ] {
            let (store, _) = open(url, &o).unwrap_or_else(|e| panic!("{url}: {e}"));
            let err = rt
                .block_on(store.list_with_delimiter(None))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("the store could not be opened: "), "{err}");
            assert!(!err.contains(secret), "{err}");
        }
    }
}

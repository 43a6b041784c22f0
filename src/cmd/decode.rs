//! `kubeboot decode`: the operator pipes one stored value (`etcdctl get KEY
//! --print-value-only`) in and gets the object as the api-server would serve it.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Exit, ExitWith, Failure, Output, render_object};
use crate::codec;

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The value to decode; `-` or absent reads stdin.
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub file: Option<PathBuf>,
    /// Output format (`-w` as in etcdctl).
    #[arg(short, long, visible_short_alias = 'w', alias = "write-out", value_enum, default_value_t = ObjectFormat::Yaml)]
    pub output: ObjectFormat,
}

/// What `decode` prints; the stored bytes are what came in, so there is no `raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectFormat {
    Yaml,
    Json,
}

pub fn run(args: DecodeArgs) -> Result<(), Failure> {
    let (name, bytes) = match args.file.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            let name = path.display().to_string();
            let bytes = std::fs::read(path)
                .with_context(|| name.clone())
                .exit_with(Exit::NoSource)?;
            (name, bytes)
        }
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading stdin")?;
            ("<stdin>".to_string(), bytes)
        }
    };
    let decoded = codec::decode_printed(&name, &bytes)?;
    let mut stdout = std::io::stdout().lock();
    let output = match args.output {
        ObjectFormat::Yaml => Output::Yaml,
        ObjectFormat::Json => Output::Json,
    };
    stdout.write_all(render_object(&decoded.object, output)?.as_bytes())?;
    Ok(())
}

//! `kubeboot decode`: the operator pipes one stored value (`etcdctl get KEY
//! --print-value-only`) in and gets the object as the api-server would serve it.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{Exit, ExitWith, Failure, Output, render_object, usage};
use crate::codec;

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The value to decode; `-` or absent reads stdin.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
}

pub fn run(args: DecodeArgs) -> Result<(), Failure> {
    if args.output == Output::Raw {
        return Err(usage(
            "decode prints yaml or json; -o raw is for inspect --get",
        ));
    }
    let (name, bytes) = match args.file.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            let name = path.display().to_string();
            let bytes = std::fs::read(path)
                .with_context(|| name.clone())
                .exit_with(Exit::Usage)?;
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
    stdout.write_all(render_object(&decoded.object, args.output)?.as_bytes())?;
    Ok(())
}

//! `zkid-keygen`: runs the Groth16 setup for a circuit and writes its
//! proving and verifying keys.

use std::{fs::OpenOptions, io::Write, path::PathBuf, process::ExitCode};

use anyhow::{bail, Context};
use clap::Parser;
use rand::rngs::OsRng;
use zkid_circuits::{registry, CircuitProvingKey};

/// Generate the proving and verifying key of a zkid circuit.
///
/// Writes `<name>-v<version>.pk` and `.vk` into the output directory and
/// prints the key id. The setup randomness comes from the OS and is
/// dropped; whoever runs this must be trusted not to keep it.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Circuit name (see --list).
    #[arg(required_unless_present = "list")]
    circuit: Option<String>,
    /// Directory for the key files (created if missing).
    #[arg(long, default_value = ".")]
    out_dir: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    force: bool,
    /// List the known circuits and exit.
    #[arg(long)]
    list: bool,
}

fn circuits() -> Vec<String> {
    registry::circuit_ids()
        .into_iter()
        .map(|id| id.name)
        .collect()
}

fn setup(name: &str) -> anyhow::Result<CircuitProvingKey> {
    match registry::generate_by_name(name, &mut OsRng) {
        Ok((proving_key, _)) => Ok(proving_key),
        Err(registry::RegistryError::UnknownCircuit(_)) => bail!(
            "unknown circuit {name:?}; known circuits: {}",
            circuits().join(", ")
        ),
        Err(other) => Err(other.into()),
    }
}

fn write_new(
    path: &PathBuf,
    force: bool,
    write: impl FnOnce(&mut std::fs::File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create {} (use --force to replace it)",
            path.display()
        )
    })?;
    write(&mut file)?;
    file.flush()?;
    file.sync_all()?;
    Ok(())
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        for name in circuits() {
            println!("{name}");
        }
        return Ok(());
    }
    let name = args.circuit.context("a circuit name is required")?;
    let proving_key = setup(&name)?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let stem = format!(
        "{}-v{}",
        proving_key.circuit.name, proving_key.circuit.version
    );
    let pk_path = args.out_dir.join(format!("{stem}.pk"));
    let vk_path = args.out_dir.join(format!("{stem}.vk"));
    write_new(&pk_path, args.force, |f| Ok(proving_key.write_to(f)?))?;
    write_new(&vk_path, args.force, |f| {
        Ok(proving_key.verifying_key().write_to(f)?)
    })?;
    println!("circuit  {}", proving_key.circuit);
    println!("key id   {}", proving_key.key_id);
    println!("proving  {}", pk_path.display());
    println!("verifying {}", vk_path.display());
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zkid-keygen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

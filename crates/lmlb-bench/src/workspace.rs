//! Paths of the run: the release binaries of lmlb and the simulator (and how to
//! build them), and the folder for logs and generated configurations.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::BenchError;

pub const SIMULATOR_BINARY: &str = "lmstudio-sim";
pub const LMLB_BINARY: &str = "lmlb";

#[derive(Debug, Clone)]
pub struct Workspace {
    /// The Cargo workspace root, which contains `.bench/venv` for LiteLLM.
    pub root: PathBuf,
    /// The folder with the release binaries.
    pub bin_dir: PathBuf,
    /// A fresh folder for this run's logs and peer configurations.
    pub run_dir: PathBuf,
}

impl Workspace {
    /// Locates the workspace and creates the run folder under the system's
    /// temporary folder.
    pub fn locate() -> Result<Self, BenchError> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("the crate sits two levels below the workspace root")
            .to_path_buf();
        let bin_dir = release_dir(&root);
        let run_dir = std::env::temp_dir().join(format!("lmlb-bench-{}", std::process::id()));
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| BenchError::io(format!("failed to create {}", run_dir.display()), e))?;
        Ok(Self {
            root,
            bin_dir,
            run_dir,
        })
    }

    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Returns a path in the run folder, for a log or a configuration file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    /// Runs `cargo build --release -p lmstudio-sim -p lmlb`, which returns at
    /// once when both are up to date.
    pub fn build_binaries(&self) -> Result<(), BenchError> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let args = [
            "build",
            "--release",
            "-p",
            SIMULATOR_BINARY,
            "-p",
            LMLB_BINARY,
        ];
        let command = format!("cargo {}", args.join(" "));
        let status = Command::new(cargo)
            .args(args)
            .current_dir(&self.root)
            .status()
            .map_err(|e| BenchError::Build {
                command: command.clone(),
                reason: e.to_string(),
            })?;
        if !status.success() {
            return Err(BenchError::Build {
                command,
                reason: status.to_string(),
            });
        }
        Ok(())
    }

    /// Fails with the build command to run when a binary is missing.
    pub fn check_binaries(&self) -> Result<(), BenchError> {
        for name in [SIMULATOR_BINARY, LMLB_BINARY] {
            if !self.binary(name).is_file() {
                return Err(BenchError::Build {
                    command: "cargo build --release -p lmstudio-sim -p lmlb".to_owned(),
                    reason: format!(
                        "{} is missing; run the command or drop --no-build",
                        self.binary(name).display()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Returns the release folder: beside the running bench when it is a release build
/// (`cargo run --release` runs it from there), else `CARGO_TARGET_DIR/release`
/// or `target/release` under the workspace.
fn release_dir(root: &Path) -> PathBuf {
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .filter(|dir| dir.file_name().is_some_and(|name| name == "release"));
    if let Some(dir) = beside_exe {
        return dir;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("release")
}

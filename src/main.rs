//! The `sluice` binary: a thin shell over `sluice::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    sluice::cli::main()
}

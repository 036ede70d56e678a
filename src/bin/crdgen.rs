//! `crdgen`: writes the CustomResourceDefinitions generated from the Rust types in `src/api`.
//!
//! `crdgen --out DIR` writes one `<plural>.<group>.yaml` per CRD (what `crds/` holds and `make check-crds`
//! compares); without `--out` it prints them all to stdout, separated by `---`, for `kubectl apply -f -`.

use std::path::PathBuf;
use std::process::ExitCode;

use eiam_operator::api::crds;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => match args.next() {
                Some(dir) => out = Some(PathBuf::from(dir)),
                None => return usage("--out needs a directory"),
            },
            "-h" | "--help" => {
                println!("usage: crdgen [--out DIR]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }

    let documents = match crds::render_all() {
        Ok(documents) => documents,
        Err(err) => {
            eprintln!("crdgen: {err}");
            return ExitCode::FAILURE;
        }
    };
    match out {
        None => {
            let all: Vec<&str> = documents.iter().map(|d| d.yaml.as_str()).collect();
            print!("{}", all.join("---\n"));
        }
        Some(dir) => {
            if let Err(err) = std::fs::create_dir_all(&dir) {
                eprintln!("crdgen: cannot create {}: {err}", dir.display());
                return ExitCode::FAILURE;
            }
            for document in &documents {
                let path = dir.join(&document.file_name);
                if let Err(err) = std::fs::write(&path, &document.yaml) {
                    eprintln!("crdgen: cannot write {}: {err}", path.display());
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("crdgen: {problem}\nusage: crdgen [--out DIR]");
    ExitCode::from(2)
}

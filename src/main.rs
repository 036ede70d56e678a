//! The `eiam-operator` binary: the operator and its admin CLI.

fn main() {
    println!("eiam-operator {}", env!("CARGO_PKG_VERSION"));
}

//! The `luna` command.

fn main() {
    std::process::exit(luna::cli::main(std::env::args().skip(1).collect()));
}

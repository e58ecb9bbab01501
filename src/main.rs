//! The `luna` command.

fn main() {
    let _ = luna::cli::raise_fd_limit();
    std::process::exit(luna::cli::main(std::env::args().skip(1).collect()));
}

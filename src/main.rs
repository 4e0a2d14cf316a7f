fn main() {
    let code = nslab::cli::run(std::env::args_os().collect());
    std::process::exit(code);
}

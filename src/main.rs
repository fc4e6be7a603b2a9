fn main() -> std::process::ExitCode {
    zkherd::cli::main()
}

fn main() -> std::process::ExitCode {
    // Two rustls crypto providers end up linked (ring, ours; aws-lc-rs, a dependency's), so
    // rustls cannot pick one by itself for the clients that use its process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    zkherd::cli::main()
}

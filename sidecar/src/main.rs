use clap::Parser;
use syncmesh_replica::config::{Command, Config};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: syncmesh_replica::alloc::Counting<tikv_jemallocator::Jemalloc> =
    syncmesh_replica::alloc::Counting(tikv_jemallocator::Jemalloc);

fn main() {
    let config = Config::parse();
    if let Some(Command::CheckData(args)) = &config.command {
        // A tool, not the replica: its report goes to stdout, problems to stderr.
        tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_target(false)
            .with_writer(std::io::stderr)
            .init();
        std::process::exit(syncmesh_replica::check_data::run(args));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = runtime.block_on(syncmesh_replica::server::run(config)) {
        eprintln!("syncmesh-replica: {e}");
        std::process::exit(1);
    }
}

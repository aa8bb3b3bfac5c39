use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use lmlb::config::{Cli, Command, Config};
use lmlb::{Server, demo};

fn main() -> ExitCode {
    // A .env file in the working directory sets variables not already set, as in the original tool.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();

    // This thread accepts connections, checks the upstreams and waits for signals. The worker
    // threads that `Server::start` starts serve the connections.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lmlb: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    if let Some(Command::Demo(args)) = cli.command {
        init_logging("info");
        return match demo::run(args, cli.serve.port).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("lmlb demo: {error}");
                ExitCode::FAILURE
            }
        };
    }

    let config = match Config::resolve(&cli.serve) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("lmlb: {error}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);

    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(error) => {
            tracing::error!(%error, "failed to start");
            return ExitCode::FAILURE;
        }
    };
    lmlb::server::wait_for_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

fn init_logging(level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|error| {
        eprintln!("lmlb: invalid LOG_LEVEL \"{level}\" ({error}); using info");
        EnvFilter::new("info")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

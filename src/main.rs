use std::net::SocketAddr;

use clap::Parser;
use ledger_gateway::cli::{CheckConfigArgs, Cli, Command, MockArgs, ServeArgs};
use ledger_gateway::config::Config;
use ledger_gateway::mock::{Mock, MockOptions};
use ledger_gateway::server::persisted::PersistedQueries;
use tracing::{error, info};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    ledger_gateway::telemetry::init();
    let result = match Cli::parse().command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args).await,
        Command::CheckConfig(args) => check_config(args),
        Command::Mock(args) => mock(args).await,
        Command::PrintSchema => {
            print!("{}", ledger_gateway::schema::sdl());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            error!(%message, "ledger-gateway stopped");
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Kept alive for the whole run: dropping it stops the mock upstreams.
    let (mut config, _demo_mock) = if args.runs_demo(Config::in_environment()) {
        let addr = args.mock_listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let mock = Mock::start_on(addr, MockOptions::default()).await.map_err(|e| format!("mock upstreams: {e}"))?;
        let config = Config::load_demo(args.config.as_deref(), mock.sources_config()).map_err(|e| e.to_string())?;
        info!(addr = %mock.addr, "demo mode: mock upstreams started");
        (config, Some(mock))
    } else {
        (Config::load(args.config.as_deref()).map_err(|e| e.to_string())?, None)
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let app = ledger_gateway::app(&config).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    info!(%addr, "listening");
    if config.server.graphiql {
        info!(url = %format!("http://{addr}/"), "GraphiQL ready: open this in a browser");
    }
    ledger_gateway::server::listen::serve(listener, app, &config.server, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

/// Prints the effective configuration as TOML; `Config` serializes every
/// credential as `[redacted]`. The safelist manifest, if any, is read and
/// checked as serving would.
fn check_config(args: CheckConfigArgs) -> Result<(), String> {
    let config = Config::load(args.file.as_deref()).map_err(|e| e.to_string())?;
    PersistedQueries::new(&config.server.persisted_queries).map_err(|e| e.to_string())?;
    print!("{}", toml::to_string(&config).map_err(|e| format!("cannot show the configuration: {e}"))?);
    Ok(())
}

async fn mock(args: MockArgs) -> Result<(), String> {
    let options = MockOptions { entries: args.entries, seed: args.seed, ..MockOptions::default() };
    let mock = Mock::start_on(args.listen, options).await.map_err(|e| format!("mock upstreams: {e}"))?;
    info!(addr = %mock.addr, "listening");
    shutdown_signal().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    info!("shutting down");
}

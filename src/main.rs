use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use ledger_gateway::cli::{CheckConfigArgs, Cli, Command, MockArgs, ServeArgs};
use ledger_gateway::config::{Config, LogFormat};
use ledger_gateway::mock::{Mock, MockOptions};
use ledger_gateway::server::persisted::PersistedQueries;
use ledger_gateway::server::reload::Gateway;
use tracing::{error, info};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args).await,
        Command::CheckConfig(args) => logs_only().and_then(|()| check_config(args)),
        Command::Mock(args) => match logs_only() {
            Ok(()) => mock(args).await,
            Err(message) => Err(message),
        },
        Command::PrintSchema => {
            print!("{}", ledger_gateway::schema::sdl());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            // Start-up may fail before the configuration that sets up
            // logging is known.
            let _ = logs_only();
            error!(%message, "ledger-gateway stopped");
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn logs_only() -> Result<(), String> {
    ledger_gateway::telemetry::init(LogFormat::default(), None).map(|_| ()).map_err(|e| e.to_string())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let demo = args.runs_demo(Config::in_environment());
    // Kept alive for the whole run: dropping it stops the mock upstreams.
    let demo_mock = if demo {
        let addr = args.mock_listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        Some(Mock::start_on(addr, MockOptions::default()).await.map_err(|e| format!("mock upstreams: {e}"))?)
    } else {
        None
    };
    let mock_sources = demo_mock.as_ref().map(Mock::sources_config);
    // The same file, environment and flags at start-up and on every reload.
    let load = move || -> Result<Config, ledger_gateway::config::ConfigError> {
        let mut config = match &mock_sources {
            Some(sources) => Config::load_demo(args.config.as_deref(), sources.clone())?,
            None => Config::load(args.config.as_deref())?,
        };
        if let Some(listen) = args.listen {
            config.server.listen = listen;
        }
        Ok(config)
    };
    let config = load().map_err(|e| e.to_string())?;
    let telemetry = ledger_gateway::telemetry::init(config.telemetry.log_format, config.telemetry.otlp.as_ref())
        .map_err(|e| e.to_string())?;
    if let Some(mock) = &demo_mock {
        info!(addr = %mock.addr, "demo mode: mock upstreams started");
    }
    let gateway = Gateway::new(config.clone(), Box::new(load)).map_err(|e| e.to_string())?;
    let reloads = tokio::spawn(reload_on_hangup(gateway.clone())?);
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    info!(%addr, "listening");
    if config.server.graphiql {
        info!(url = %format!("http://{addr}/"), "GraphiQL ready: open this in a browser");
    }
    let served = ledger_gateway::server::listen::serve(listener, gateway.router(), &config.server, shutdown)
        .await
        .map_err(|e| e.to_string());
    reloads.abort();
    // Spans of the last requests included.
    telemetry.shutdown();
    served
}

/// Reloads the configuration on every SIGHUP, listened for from now on; a
/// refused reload is logged and changes nothing.
fn reload_on_hangup(gateway: Arc<Gateway>) -> Result<impl std::future::Future<Output = ()>, String> {
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot listen for SIGHUP: {e}"))?;
    Ok(async move {
        #[cfg(unix)]
        while hangups.recv().await.is_some() {
            info!("SIGHUP: reloading the configuration");
            let _ = gateway.reload_and_log().await;
        }
        #[cfg(not(unix))]
        let _ = gateway;
    })
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
    let shutdown = shutdown_signal()?;
    info!(addr = %mock.addr, "listening");
    shutdown.await;
    Ok(())
}

/// The shutdown signal (Ctrl-C or SIGTERM), listened for from now on: a
/// signal that arrives before the server runs is not lost, nor does it kill
/// the process the default way.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    Ok(async move {
        #[cfg(unix)]
        let terminate = terminate.recv();
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = terminate => {},
        }
        info!("shutting down");
    })
}

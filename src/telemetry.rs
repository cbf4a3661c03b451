//! Logging (`RUST_LOG` filters, default `info`; text or JSON lines on
//! stderr, per `telemetry.log_format`), metrics (`metrics`) and each
//! request's id and log line (`request`).

pub mod metrics;
pub mod request;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the process's subscriber, writing to stderr.
pub fn init(format: LogFormat) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing::subscriber::set_global_default(subscriber(format, ansi, std::io::stderr));
}

/// The subscriber `init` installs, writing to `writer` (tests capture it).
pub fn subscriber<W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.json().finish()),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
    }
}

//! Logs, metrics and traces. Logs: `RUST_LOG` filters (default `info`), text
//! or JSON lines on stderr per `telemetry.log_format`; each request's id and
//! log line are in [`request`], the metrics in [`metrics`]. Traces: the spans made here (target [`SPANS`]) go to an
//! OpenTelemetry exporter when `[telemetry.otlp]` is configured, and to
//! nothing else, so log lines look the same with tracing on or off; with it
//! off no layer wants them and they cost what a disabled span costs.
//!
//! Span tree of one request: `graphql.request` > `source.read` (one per
//! source a ledger read reaches) and `entity.batch` (one per loader batch)
//! > `upstream.call` (one per upstream GET, answered from the cache or sent).

pub mod metrics;
pub mod request;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::field::Empty;
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{LogFormat, OtlpConfig, OtlpProtocol};
use crate::model::SourceName;

/// The target of every trace span.
pub const SPANS: &str = "ledger_gateway::trace";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.otlp: cannot build the exporter: {0}")]
    Exporter(String),
}

/// Keeps the exporter running; [`Telemetry::shutdown`] flushes it.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every span still buffered, waiting at most the export
    /// timeout, then stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "trace exporter did not flush");
            }
        }
    }
}

/// Installs logging in `format`, and the trace exporter when `otlp` is
/// given. Only the first call in a process installs anything.
pub fn init(format: LogFormat, otlp: Option<&OtlpConfig>) -> Result<Telemetry, TelemetryError> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let provider = otlp.map(provider).transpose()?;
    let traces = provider.as_ref().map(|provider| {
        // Warnings and errors logged inside a span become its events.
        let wanted = filter_fn(|meta| meta.target() == SPANS || (meta.is_event() && *meta.level() <= Level::WARN));
        tracing_opentelemetry::layer().with_tracer(provider.tracer("ledger-gateway")).with_filter(wanted)
    });
    let logs = log_layer(format, ansi, std::io::stderr);
    if tracing_subscriber::registry().with(logs).with(traces).try_init().is_err() {
        return Ok(Telemetry::default());
    }
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    }
    Ok(Telemetry { provider })
}

/// Logging alone, as `init` sets it up, writing to `writer` (tests capture it).
pub fn subscriber<W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    Box::new(tracing_subscriber::registry().with(log_layer(format, ansi, writer)))
}

/// Log lines, `RUST_LOG` filtered (default `info`), trace spans left out.
fn log_layer<S, W>(format: LogFormat, ansi: bool, writer: W) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(writer);
    let logs = match format {
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Text => logs.with_ansi(ansi).boxed(),
    };
    logs.with_filter(filter.and(filter_fn(|meta| meta.target() != SPANS)))
}

fn provider(config: &OtlpConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let protocol = match config.protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
    };
    // The blocking client: the batch processor exports from a thread of its
    // own, outside the async runtime.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(config.traces_url())
        .with_timeout(config.timeout())
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(config.service_name.clone()).build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio))))
        .with_resource(resource)
        .build())
}

/// One GraphQL operation, continuing the caller's `traceparent` if any.
pub fn graphql_request(headers: &axum::http::HeaderMap) -> Span {
    let span = tracing::info_span!(
        target: SPANS,
        "graphql.request",
        otel.kind = "server",
        otel.name = Empty,
        graphql.operation.type = Empty,
        graphql.operation.name = Empty,
        otel.status_code = Empty,
    );
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        let _ = span.set_parent(parent);
    }
    span
}

/// Names a `graphql.request` span after its operation (`query RecentEntries`).
pub fn record_operation(span: &Span, operation_type: Option<&str>, operation_name: Option<&str>) {
    let ty = operation_type.unwrap_or("unknown");
    span.record("graphql.operation.type", ty);
    if let Some(name) = operation_name {
        span.record("graphql.operation.name", name);
    }
    let name = operation_name.map_or_else(|| ty.to_owned(), |name| format!("{ty} {name}"));
    span.record("otel.name", name);
}

/// One source's part of a read: a ledger page, an entry by id or a count.
pub fn source_read(source: &SourceName, read: &'static str) -> Span {
    tracing::info_span!(target: SPANS, "source.read", source = %source, read, error.code = Empty, otel.status_code = Empty)
}

/// One loader batch of items or locations from one source.
pub fn entity_batch(source: &SourceName, entity: &'static str, keys: usize) -> Span {
    tracing::info_span!(
        target: SPANS,
        "entity.batch",
        source = %source,
        entity,
        keys = keys as i64,
        error.code = Empty,
        otel.status_code = Empty,
    )
}

/// One upstream GET, whether the cache answered it or attempts were sent
/// (their number in `attempt`, the last one's status in
/// `http.response.status_code`).
pub fn upstream_call(source: &SourceName, route: &'static str) -> Span {
    tracing::info_span!(
        target: SPANS,
        "upstream.call",
        otel.kind = "client",
        otel.name = route,
        source = %source,
        route,
        http.request.method = "GET",
        http.response.status_code = Empty,
        attempt = Empty,
        cache_hit = Empty,
        error.code = Empty,
        otel.status_code = Empty,
    )
}

/// Marks `span` failed with `code` (an `extensions.code`).
pub fn record_error(span: &Span, code: &'static str) {
    span.record("error.code", code);
    span.record("otel.status_code", "ERROR");
}

/// Adds the current span's `traceparent` to an outgoing request.
pub fn inject_trace_context(headers: &mut axum::http::HeaderMap) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

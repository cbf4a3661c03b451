//! Telling a caller that part of the answer is older than the cache's
//! time-to-live: when `cache.stale_if_error_secs` lets an expired item,
//! location or stock answer stand in for a failing source, the response
//! says so in `extensions.staleSources`, one entry per source and kind with
//! the age of the oldest answer used. The field's data carries no error:
//! it is the caller's own earlier answer, not a failure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Name, Response, Value};

use super::loaders::Loaders;
use crate::model::SourceName;
use crate::upstream::Resource;

/// The stand-ins of one request, by source and resource label.
#[derive(Debug, Default)]
pub struct StaleAnswers(Mutex<BTreeMap<(String, &'static str), Duration>>);

impl StaleAnswers {
    /// Records that expired answers `age` old stood in for `source`.
    pub fn note(&self, source: &SourceName, resource: Resource, age: Option<Duration>) {
        let Some(age) = age else { return };
        let mut noted = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = noted.entry((source.to_string(), resource.label())).or_default();
        *oldest = (*oldest).max(age);
    }

    /// `[{source, resource, ageSeconds}]`, or `None` when nothing was stale.
    fn report(&self) -> Option<Value> {
        let noted = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if noted.is_empty() {
            return None;
        }
        let entries = noted.iter().map(|((source, resource), age)| {
            Value::Object(
                [
                    (Name::new("source"), Value::from(source.as_str())),
                    (Name::new("resource"), Value::from(*resource)),
                    (Name::new("ageSeconds"), Value::from(age.as_secs())),
                ]
                .into_iter()
                .collect(),
            )
        });
        Some(Value::List(entries.collect()))
    }
}

/// The extension that adds `staleSources` to a response that used stand-ins.
#[derive(Debug)]
pub struct StaleNotice;

impl ExtensionFactory for StaleNotice {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(StaleNotice)
    }
}

#[async_trait::async_trait]
impl Extension for StaleNotice {
    async fn execute(&self, ctx: &ExtensionContext<'_>, operation: Option<&str>, next: NextExecute<'_>) -> Response {
        let mut response = next.run(ctx, operation).await;
        if let Some(report) = ctx.data_opt::<Loaders>().and_then(|loaders| loaders.stale_answers().report()) {
            response.extensions.insert("staleSources".to_owned(), report);
        }
        response
    }
}

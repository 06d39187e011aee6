//! A `tracing` subscriber that keeps what it sees, so a test can read the
//! spans and events of the pool it runs: each span's fields as they were
//! recorded, and each event with the fields of the span it happened in.
//!
//! Install it for the test's thread only (`tracing::subscriber::set_default`):
//! a pool started in an `actix_rt::test` runs its actors on that thread.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A field's name and its value, as `Debug` (strings without their quotes).
pub type Fields = HashMap<String, String>;

/// A span as it was when it closed (or now, while it is open).
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// Its target, e.g. `lpm::request`.
    pub target: String,
    /// Its name, e.g. `request`.
    pub name: String,
    /// Every field recorded so far.
    pub fields: Fields,
}

/// An event, with the span it happened in.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// Its target.
    pub target: String,
    /// Its fields, `message` among them.
    pub fields: Fields,
    /// The span it happened in, if any.
    pub span: Option<SpanRecord>,
}

#[derive(Debug, Default)]
struct Store {
    open: HashMap<Id, SpanRecord>,
    closed: Vec<SpanRecord>,
    events: Vec<EventRecord>,
}

/// What the subscriber saw; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Store>>);

impl Captured {
    /// A subscriber that records into a new `Captured`, and the `Captured`.
    pub fn subscriber() -> (impl Subscriber + Send + Sync, Captured) {
        let captured = Captured::default();
        let layer = CaptureLayer(captured.clone());
        (tracing_subscriber::registry().with(layer), captured)
    }

    /// The spans that closed, in the order they closed.
    pub fn closed_spans(&self) -> Vec<SpanRecord> {
        self.lock().closed.clone()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<EventRecord> {
        self.lock().events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct CaptureLayer(Captured);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CaptureLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        let record = SpanRecord {
            target: attrs.metadata().target().to_owned(),
            name: attrs.metadata().name().to_owned(),
            fields,
        };
        self.0.lock().open.insert(id.clone(), record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(span) = self.0.lock().open.get_mut(id) {
            values.record(&mut Visitor(&mut span.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let mut store = self.0.lock();
        let span = ctx
            .event_span(event)
            .and_then(|span| store.open.get(&span.id()).cloned());
        store.events.push(EventRecord {
            target: event.metadata().target().to_owned(),
            fields,
            span,
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let mut store = self.0.lock();
        if let Some(span) = store.open.remove(&id) {
            store.closed.push(span);
        }
    }
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

//! Typed messages: a request type names its reply type ([`Call`]), an event
//! type names itself ([`Topic`]) and, when its sender awaits an answer, its
//! reply type too ([`Query`]). The name is what travels on the wire, so both
//! sides agree on it while each keeps its own Rust types.

use serde::{de::DeserializeOwned, Serialize};

/// A request type, its wire name and the type its worker answers with.
///
/// The name routes the request to the worker's handler for it (registered
/// with `Worker::handle`), so keep it stable across releases: renaming the
/// Rust type is fine, renaming `NAME` breaks the workers already deployed.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use lpm_protocol::Call;
///
/// #[derive(Serialize, Deserialize)]
/// struct CountPrimes { below: u64 }
///
/// #[derive(Serialize, Deserialize)]
/// struct Primes(u64);
///
/// impl Call for CountPrimes {
///     const NAME: &'static str = "count_primes";
///     type Reply = Primes;
/// }
/// ```
pub trait Call: Serialize + DeserializeOwned + Send + 'static {
    /// The wire name the worker's handler is registered under.
    const NAME: &'static str;
    /// What the worker answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// An event type and its wire name: broadcast by the pool to every worker,
/// or emitted by a worker to the pool's subscribers.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use lpm_protocol::Topic;
///
/// #[derive(Serialize, Deserialize)]
/// struct Reload { config: String }
///
/// impl Topic for Reload {
///     const NAME: &'static str = "reload";
/// }
/// ```
pub trait Topic: Serialize + DeserializeOwned + Send + 'static {
    /// The event's wire name.
    const NAME: &'static str;
}

/// An event a worker emits and awaits an answer to, with the answer's type.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use lpm_protocol::{Query, Topic};
///
/// #[derive(Serialize, Deserialize)]
/// struct WhatTimeIsIt;
///
/// impl Topic for WhatTimeIsIt {
///     const NAME: &'static str = "what_time_is_it";
/// }
/// impl Query for WhatTimeIsIt {
///     type Reply = u64;
/// }
/// ```
pub trait Query: Topic {
    /// What the supervisor side answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

//! One timer per actor, kept armed for the earliest deadline it was told about,
//! so thousands of request deadlines cost one timer, not one each.

use std::time::Instant;

use actix::prelude::*;

#[derive(Debug, Default)]
pub(crate) struct Alarm {
    armed: Option<(Instant, SpawnHandle)>,
}

impl Alarm {
    /// Makes sure `ring` runs no later than `at`.
    pub(crate) fn arm<A>(
        &mut self,
        at: Instant,
        ctx: &mut Context<A>,
        ring: fn(&mut A, &mut Context<A>),
    ) where
        A: Actor<Context = Context<A>>,
    {
        if let Some((armed_at, handle)) = self.armed {
            if armed_at <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, ring);
        self.armed = Some((at, handle));
    }

    /// Cancels the alarm: nothing is due any more (a pending timer would
    /// keep its actor alive).
    pub(crate) fn disarm<A>(&mut self, ctx: &mut Context<A>)
    where
        A: Actor<Context = Context<A>>,
    {
        if let Some((_, handle)) = self.armed.take() {
            ctx.cancel_future(handle);
        }
    }

    /// To be called first in `ring`: the alarm is no longer armed.
    pub(crate) fn rang(&mut self) {
        self.armed = None;
    }
}

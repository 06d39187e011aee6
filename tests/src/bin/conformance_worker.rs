//! `conformance_worker`: the Rust implementation of the conformance worker
//! (`tests/conformance/SPEC.md`), built on `lpm::worker`. The Python and Node
//! ones serve the same calls, so `tests/tests/conformance.rs` drives all three.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lpm::worker::{CallContext, Done, Event, Worker};
use lpm_tests::conformance::{
    stream_byte, Add, Ask, BusyFor, CrashOnce, Echo, Fail, Identity, Recall, Report, Sleep,
    StreamBytes, TraceOf, WhoAmI, CANCELLED, GOODBYE, QUESTION, REMEMBER,
};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lpm::WorkerError> {
    let worker = Worker::from_env().await?;

    worker.handle(|Echo(value): Echo, _: CallContext| async move { Ok(value) });
    worker.handle(|Add { a, b }: Add, _: CallContext| async move { Ok(a + b) });
    worker.handle(
        |Fail { message }: Fail, _: CallContext| async move { Err::<(), _>(message.into()) },
    );
    worker.handle(
        |CrashOnce { marker }: CrashOnce, _: CallContext| async move {
            if std::fs::metadata(&marker).is_err() {
                std::fs::write(&marker, b"crashed once")?;
                std::process::exit(3);
            }
            Ok("survived".to_owned())
        },
    );
    let handle = worker.clone();
    worker.handle(move |Sleep { ms }: Sleep, ctx: CallContext| {
        let worker = handle.clone();
        async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(ms),
                () = ctx.cancelled() => {
                    worker.emit(CANCELLED, &ms)?;
                    Ok(ms)
                }
            }
        }
    });
    let handle = worker.clone();
    worker.handle(move |BusyFor { ms }: BusyFor, _: CallContext| {
        let worker = handle.clone();
        async move {
            worker.busy();
            tokio::time::sleep(Duration::from_millis(ms)).await;
            worker.ready();
            Ok(ms)
        }
    });
    let handle = worker.clone();
    worker.handle(move |Ask { question }: Ask, _: CallContext| {
        let reply = handle.emit_with_reply(QUESTION, &question);
        async move { Ok(reply.await?.data::<Value>()?) }
    });
    let remembered = Arc::new(Mutex::new(Value::Null));
    let last = Arc::clone(&remembered);
    worker.handle(move |_: Recall, _: CallContext| {
        let value = last.lock().expect("not poisoned").clone();
        async move { Ok(value) }
    });
    worker.on_event(REMEMBER, move |event: Event| {
        let remembered = Arc::clone(&remembered);
        async move {
            if let Ok(value) = event.data::<Value>() {
                *remembered.lock().expect("not poisoned") = value;
            }
        }
    });
    let handle = worker.clone();
    worker.handle(move |Report { name, value }: Report, _: CallContext| {
        handle.report_stats(&[(name.as_str(), value)]);
        async move { Ok(()) }
    });
    worker.handle(
        |StreamBytes { bytes }: StreamBytes, ctx: CallContext| async move {
            let stream: Vec<u8> = (0..bytes).map(stream_byte).collect();
            ctx.stream_reply(std::io::Cursor::new(stream));
            Ok(bytes)
        },
    );
    let slot = worker.slot();
    worker.handle(move |_: WhoAmI, _: CallContext| async move {
        Ok(Identity {
            pid: std::process::id(),
            slot,
        })
    });
    worker.handle(|_: TraceOf, ctx: CallContext| async move {
        Ok(ctx.trace_parent().map(|context| context.to_string()))
    });
    let handle = worker.clone();
    worker.on_soft_kill(move |done: Done| async move {
        let _ = handle.emit(GOODBYE, &());
        done.done();
    });

    worker.ready();
    worker.run().await
}

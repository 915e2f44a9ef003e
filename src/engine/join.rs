//! Awaiting many futures of one core at once.
//!
//! Owns [`join_all`]: polls every future on each wake-up (fine for the few
//! to few thousand a request fans out to) and answers in input order.

/// Awaits all futures concurrently, answers in input order.
pub(crate) async fn join_all<F: std::future::Future>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let tasks: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::with_capacity(tasks.len());
    let mut slots: Vec<Option<F::Output>> = (0..tasks.len()).map(|_| None).collect();
    let mut tasks: Vec<Option<_>> = tasks.into_iter().map(Some).collect();
    futures_lite::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, t) in tasks.iter_mut().enumerate() {
            if let Some(fut) = t {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        slots[i] = Some(v);
                        *t = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(slots.into_iter().flatten());
    out
}

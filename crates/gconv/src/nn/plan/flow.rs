//! How values and gradients flow over a plan whose values may feed several nodes: when each
//! value and each gradient is live, which storage they share, and where each node's backward
//! pass sends the gradient of each input it reads. Forward node i runs at step i, the loss at
//! n, backward node i at 2n - i, so a value's gradient is complete once its last reader has
//! run backward, and is read by its producer's backward pass.

use super::PlanKind;
use super::lower::{Exec, Lowered};

/// Where a node's backward pass sends the gradient of one of its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Contribution {
    /// Nowhere: the graph's input, or a node whose output gets no gradient.
    None,
    /// The input's gradient is the node's output gradient, the same buffer (a view such as
    /// Flatten, read by nothing else).
    Shared,
    /// The first contribution in backward order: it writes the input's gradient.
    Write,
    /// A later one: added to the input's gradient (through a scratch where the node's kernel
    /// overwrites its output).
    Add,
}

/// Lifetimes and storage of a plan's values and gradients.
pub(super) struct Flow {
    /// Value v's activation storage class (0: the host-written input); views share it.
    pub store: Vec<usize>,
    /// Each activation class's live interval (first, last step).
    pub act: Vec<(usize, usize)>,
    /// Value v's gradient storage class; 0: no gradient (the input, or nothing reads v back).
    pub gstore: Vec<usize>,
    /// Each gradient class's live interval.
    pub grad: Vec<(usize, usize)>,
    /// Node k's contribution to the gradient of each of its inputs.
    pub contributions: Vec<Vec<Contribution>>,
}

/// The step of node i's backward pass in a plan of n nodes.
pub(super) fn t_bwd(n: usize, i: usize) -> usize {
    2 * n - i
}

/// Whether node k's backward pass overwrites its input's gradient (a kernel's output), so a
/// later contribution needs a scratch to be added from.
pub(super) fn overwrites(exec: &Exec) -> bool {
    !matches!(exec, Exec::Add | Exec::Concat | Exec::Alias)
}

pub(super) fn flow(lowered: &Lowered, kind: PlanKind) -> Flow {
    let (execs, inputs) = (&lowered.execs, &lowered.inputs);
    let n = execs.len();
    let train = matches!(kind, PlanKind::Train { .. });
    let readers: Vec<Vec<(usize, usize)>> = (0..=n).map(|v| lowered.readers(v)).collect();
    // Activations: views (Flatten, Dropout in evaluation) share their input's storage.
    let mut store = vec![0usize; n + 1];
    let mut next = 1;
    for v in 1..=n {
        store[v] = match execs[v - 1] {
            Exec::Alias => store[inputs[v - 1][0]],
            _ => {
                next += 1;
                next - 1
            }
        };
    }
    let uses: Vec<(usize, usize)> = (0..=n)
        .map(|v| {
            let def = v.saturating_sub(1);
            let mut last = if v == n { n } else { def };
            if train && v > 0 && execs[v - 1].backward_reads_output() {
                last = last.max(t_bwd(n, v - 1));
            }
            for &(c, _) in &readers[v] {
                last = last.max(c);
                if train && execs[c].backward_reads_input() {
                    last = last.max(t_bwd(n, c));
                }
            }
            if kind == PlanKind::Capture {
                last = 2 * n + 1;
            }
            (def, last)
        })
        .collect();
    if !train {
        let act = intervals(&store, &uses);
        let contributions = inputs.iter().map(|i| vec![Contribution::None; i.len()]).collect();
        return Flow { store, act, gstore: vec![0; n + 1], grad: vec![], contributions };
    }
    // Which values get a gradient: the output, and values read by a node whose output does.
    let mut alive = vec![false; n + 1];
    alive[n] = true;
    for v in (1..n).rev() {
        alive[v] = readers[v].iter().any(|&(c, _)| alive[c + 1]);
    }
    // A view read by nothing else shares its input's gradient with its own.
    let shares = |u: usize| match readers[u][..] {
        [(k, 0)] if matches!(execs[k], Exec::Alias) && alive[k + 1] => Some(k + 1),
        _ => None,
    };
    let mut gstore = vec![0usize; n + 1];
    let mut gnext = 1;
    for v in (1..=n).rev().filter(|&v| alive[v]) {
        gstore[v] = match shares(v) {
            Some(w) => gstore[w],
            None => {
                gnext += 1;
                gnext - 1
            }
        };
    }
    let guses: Vec<(usize, usize)> = (0..=n)
        .map(|v| {
            let last_reader = readers[v].iter().map(|r| r.0).filter(|&c| alive[c + 1]).max();
            match (alive[v] && v > 0, last_reader) {
                (false, _) => (0, 0),
                (true, _) if v == n => (n, t_bwd(n, v - 1)),
                (true, Some(c)) => (t_bwd(n, c), t_bwd(n, v - 1)),
                (true, None) => (0, 0),
            }
        })
        .collect();
    let contributions = (0..n)
        .map(|k| {
            (0..inputs[k].len())
                .map(|s| contribution(k, s, inputs, &readers, &alive, shares(inputs[k][s])))
                .collect()
        })
        .collect();
    let act = intervals(&store, &uses);
    let grad = intervals(&gstore, &guses);
    Flow { store, act, gstore, grad, contributions }
}

/// Node k's contribution to the gradient of its input in slot s, whose value `shared` (when
/// a view reads it alone) hands its gradient down.
fn contribution(
    k: usize,
    s: usize,
    inputs: &[Vec<usize>],
    readers: &[Vec<(usize, usize)>],
    alive: &[bool],
    shared: Option<usize>,
) -> Contribution {
    let u = inputs[k][s];
    if u == 0 || !alive[k + 1] {
        return Contribution::None;
    }
    if shared == Some(k + 1) {
        return Contribution::Shared;
    }
    // Backward order: later nodes first, a node's slots in order.
    let first = readers[u]
        .iter()
        .filter(|&&(c, _)| alive[c + 1])
        .min_by_key(|&&(c, slot)| (std::cmp::Reverse(c), slot));
    if first == Some(&(k, s)) { Contribution::Write } else { Contribution::Add }
}

/// The live interval of each storage class: value v lives in `store[v]`.
fn intervals(store: &[usize], uses: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let count = store.iter().copied().max().map_or(0, |m| m + 1);
    let mut iv = vec![(usize::MAX, 0usize); count];
    for (v, &s) in store.iter().enumerate() {
        iv[s].0 = iv[s].0.min(uses[v].0);
        iv[s].1 = iv[s].1.max(uses[v].1);
    }
    iv
}

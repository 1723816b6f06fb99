// slice.wgsl: concatenation along a dimension and its gradient, a slice along it.
//
// Both views a tensor as rows: a source of shape (outer, len, inner) is the block
// [offset, offset + len) of every row of a destination of shape (outer, total, inner), a row
// holding `row` = total x inner elements and the block starting `offset` x inner elements in.

struct SliceParams {
    // Elements of the source (the smaller tensor): outer x len x inner.
    count: u32,
    // Elements of the source per row: len x inner.
    block: u32,
    // Elements of the destination per row: total x inner.
    row: u32,
    // Where the block starts in a row: offset x inner.
    start: u32,
    // narrow: 1 adds into `small` instead of overwriting it (gradients that fan in).
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> p: SliceParams;
@group(0) @binding(1) var<storage, read_write> small: array<f32>;
@group(0) @binding(2) var<storage, read_write> big: array<f32>;

// Where element idx of the source lies in the destination.
fn big_index(idx: u32) -> u32 {
    return (idx / p.block) * p.row + p.start + idx % p.block;
}

// One input of torch.cat: big[rows, start..start + block] = small.
@compute @workgroup_size(WG)
fn cat_place(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.count { return; }
    big[big_index(idx)] = small[idx];
}

// torch.narrow as a copy, or cat's gradient for one input: small (+)= big[rows, block].
@compute @workgroup_size(WG)
fn narrow(invocation: Invocation) {
    let idx = linear_index(invocation);
    if idx >= p.count { return; }
    let v = big[big_index(idx)];
    small[idx] = select(v, small[idx] + v, p.accumulate == 1u);
}

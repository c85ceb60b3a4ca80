//! Small dense kernels shared by the solvers: dot products, axpy and a vectorisable exp.

/// a · b over the common length.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators so that the compiler vectorises the loop.
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let chunks = n / 4;
    for c in 0..chunks {
        let i = c * 4;
        acc[0] += a[i] * b[i];
        acc[1] += a[i + 1] * b[i + 1];
        acc[2] += a[i + 2] * b[i + 2];
        acc[3] += a[i + 3] * b[i + 3];
    }
    let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for i in chunks * 4..n {
        s += a[i] * b[i];
    }
    s
}

/// `(a·b0, a·b1)`: each loaded element of `a` serves two dot products (kernel rows).
#[inline]
pub fn dot2(a: &[f64], b0: &[f64], b1: &[f64]) -> (f64, f64) {
    let n = a.len().min(b0.len()).min(b1.len());
    let (a, b0, b1) = (&a[..n], &b0[..n], &b1[..n]);
    let mut s0 = [0.0f64; 4];
    let mut s1 = [0.0f64; 4];
    let chunks = n / 4;
    for c in 0..chunks {
        let i = c * 4;
        for l in 0..4 {
            s0[l] += a[i + l] * b0[i + l];
            s1[l] += a[i + l] * b1[i + l];
        }
    }
    let mut r0 = (s0[0] + s0[2]) + (s0[1] + s0[3]);
    let mut r1 = (s1[0] + s1[2]) + (s1[1] + s1[3]);
    for i in chunks * 4..n {
        r0 += a[i] * b0[i];
        r1 += a[i] * b1[i];
    }
    (r0, r1)
}

/// y += a·x.
#[inline]
pub fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `exp` of every value in place, for arguments ≤ 0 (RBF kernels): branch-free so the loop
/// vectorises (the libm call is a third of RBF training time otherwise). Cody–Waite range
/// reduction x = n·ln2 + r, |r| ≤ ln2/2, and a degree-12 Taylor polynomial: relative error
/// below 1e-15; arguments below −708 give 0 or a value below 1e-307.
pub fn exp_nonpositive(v: &mut [f64]) {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    // fdlibm's split of ln 2: 6.93147180369123816490e-01 and 1.90821492927058770002e-10.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    // 2^52 + 2^51: adding it rounds to an integer held in the low mantissa bits.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    const C: [f64; 13] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
    ];
    for x in v.iter_mut() {
        let xc = x.clamp(-708.0, 0.0);
        let t = xc * LOG2E + MAGIC;
        let n = t - MAGIC;
        let ni = (t.to_bits() as i64).wrapping_sub(MAGIC.to_bits() as i64);
        let r = (xc - n * LN2_HI) - n * LN2_LO;
        let mut p = C[12];
        for c in C[..12].iter().rev() {
            p = p * r + c;
        }
        let scale = f64::from_bits(((ni + 1023) << 52) as u64);
        *x = p * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate() {
        let mut xs: Vec<f64> = (0..200_000).map(|i| -(i as f64) * 0.0035).collect();
        xs.extend([0.0, -1e-300, -0.5, -707.9, -1e-12]);
        let mut v = xs.clone();
        exp_nonpositive(&mut v);
        for (x, e) in xs.iter().zip(&v) {
            let want = x.exp();
            let rel = ((e - want) / want).abs();
            assert!(rel < 1e-15, "exp({x}) = {e}, want {want}, rel {rel}");
        }
    }
}

//! SPC checked against hand computations, constructed rule patterns, and the simulator's drifts.

use gemba_analytics::spc::{self, c4, d2};
use gemba_analytics::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn constants_match_the_tables() {
    // Montgomery, appendix VI.
    assert!(close(c4(2).unwrap(), 0.7979, 1e-4));
    assert!(close(c4(5).unwrap(), 0.9400, 1e-4));
    assert!(close(c4(10).unwrap(), 0.9727, 1e-4));
    assert!(close(c4(25).unwrap(), 0.9896, 1e-4));
    assert!(close(d2(5).unwrap(), 2.326, 1e-9));
    assert!(spc::d2(1).is_err() && spc::d2(26).is_err());
}

#[test]
fn imr_by_hand() {
    // x = 10, 12, 11, 13, 12: X̄ = 11.6; moving ranges 2, 1, 2, 1 → MR̄ = 1.5; σ = 1.5/1.128.
    let imr = Imr::estimate(&[10.0, 12.0, 11.0, 13.0, 12.0]).unwrap();
    let sigma = 1.5 / 1.128;
    assert!(close(imr.individuals.center, 11.6, 1e-12));
    assert!(close(imr.individuals.ucl, 11.6 + 3.0 * sigma, 1e-12));
    assert!(close(imr.individuals.lcl, 11.6 - 3.0 * sigma, 1e-12));
    assert!(close(imr.moving_range.ucl, 3.2686 * 1.5, 1e-3));
    assert_eq!(imr.moving_range.lcl, 0.0);
    assert!(Imr::estimate(&[1.0, f64::NAN]).is_err());
}

#[test]
fn xbar_r_and_s_by_hand() {
    // Three subgroups of n = 4.
    let g = vec![
        vec![10.0, 11.0, 9.0, 10.0],  // mean 10, R 2, s 0.8165
        vec![12.0, 11.0, 13.0, 12.0], // mean 12, R 2, s 0.8165
        vec![11.0, 10.0, 12.0, 11.0], // mean 11, R 2, s 0.8165
    ];
    let r = XbarR::estimate(&g).unwrap();
    // A2(4) = 0.729: limits 11 ± 0.729·2.
    assert!(close(r.xbar.ucl, 11.0 + 0.729 * 2.0, 2e-3));
    assert!(close(r.range.ucl, 2.282 * 2.0, 2e-3)); // D4(4) = 2.282
    assert_eq!(r.range.lcl, 0.0); // D3(4) = 0
    let s = XbarS::estimate(&g).unwrap();
    let s_bar = (2.0f64 / 3.0).sqrt();
    // A3(4) = 1.628, B4(4) = 2.266.
    assert!(close(s.xbar.ucl, 11.0 + 1.628 * s_bar, 2e-3));
    assert!(close(s.s.ucl, 2.266 * s_bar, 2e-3));
    let ragged = vec![vec![1.0, 2.0], vec![1.0]];
    assert!(matches!(
        XbarR::estimate(&ragged),
        Err(SpcError::RaggedSubgroup { index: 1, .. })
    ));
}

#[test]
fn ewma_and_cusum_by_hand() {
    // λ = 0.5, μ0 = 0, σ = 1: z = 0.5, 1.25, …; first limit L·σ·√(λ/(2−λ)·(1−(1−λ)²)) = 3·√(1/3·0.75).
    let e = ewma(&[1.0, 2.0], 0.0, 1.0, 0.5, 3.0).unwrap();
    assert!(close(e.values[0], 0.5, 1e-12) && close(e.values[1], 1.25, 1e-12));
    assert!(close(e.ucl[0], 3.0 * (0.25f64).sqrt(), 1e-12));
    assert!(ewma(&[1.0], 0.0, 1.0, 1.5, 3.0).is_err());
    // CUSUM k = 0.5, h = 5 on a step of +1σ after 10 points: C⁺ grows by 0.5 per point → signal
    // once it exceeds 5, i.e. at the 11th shifted point.
    let mut x = vec![0.0; 10];
    x.extend(vec![1.0; 20]);
    let c = cusum(&x, 0.0, 1.0, 0.5, 5.0).unwrap();
    assert_eq!(c.out_of_control.first(), Some(&20));
    assert!(close(c.upper[19], 5.0, 1e-12));
}

#[test]
fn attribute_charts_by_hand() {
    // p̄ = 10/500 = 0.02; n = 100: 3·√(0.02·0.98/100) = 0.042.
    let base = vec![(2.0, 100.0); 5];
    let p = attribute_center(AttributeChart::P, &base).unwrap();
    assert!(close(p, 0.02, 1e-12));
    let s = attribute_chart(AttributeChart::P, p, &[(2.0, 100.0), (9.0, 100.0)]);
    assert!(close(
        s.ucl[0],
        0.02 + 3.0 * (0.02f64 * 0.98 / 100.0).sqrt(),
        1e-12
    ));
    assert_eq!(s.lcl[0], 0.0);
    assert_eq!(s.out_of_control, vec![1]);
    let c = attribute_center(AttributeChart::C, &[(4.0, 1.0), (4.0, 1.0)]).unwrap();
    let s = attribute_chart(AttributeChart::C, c, &[(11.0, 1.0)]);
    assert!(close(s.ucl[0], 10.0, 1e-12) && s.out_of_control == vec![0]);
    let u = attribute_center(AttributeChart::U, &[(6.0, 2.0), (2.0, 2.0)]).unwrap();
    assert!(close(u, 2.0, 1e-12));
    let np = attribute_center(AttributeChart::Np, &[(3.0, 50.0), (5.0, 50.0)]).unwrap();
    let s = attribute_chart(AttributeChart::Np, np, &[(4.0, 50.0)]);
    assert!(close(
        s.ucl[0],
        4.0 + 3.0 * (4.0f64 * (1.0 - 0.08)).sqrt(),
        1e-12
    ));
    assert!(attribute_center(AttributeChart::P, &[(5.0, 2.0)]).is_err());
}

fn fired(values: &[f64], rule: Rule) -> Vec<usize> {
    let set = RuleSet {
        enabled: vec![rule],
    };
    check_rules(values, 0.0, 1.0, &set)
        .iter()
        .map(|v| v.index)
        .collect()
}

#[test]
fn each_rule_fires_on_its_pattern_and_not_on_a_near_miss() {
    assert_eq!(fired(&[0.0, 3.1, -2.9], Rule::Beyond3Sigma), vec![1]);
    let mut nine = vec![-0.5];
    nine.extend(vec![0.2; 9]);
    assert_eq!(fired(&nine, Rule::NineSameSide), vec![9]);
    assert!(fired(&nine[..9], Rule::NineSameSide).is_empty());
    let six: Vec<f64> = (0..6).map(|i| -1.0 + 0.3 * i as f64).collect();
    assert_eq!(fired(&six, Rule::SixTrending), vec![5]);
    assert!(fired(&six[..5], Rule::SixTrending).is_empty());
    let alt: Vec<f64> = (0..14)
        .map(|i| if i % 2 == 0 { 0.5 } else { -0.5 })
        .collect();
    assert_eq!(fired(&alt, Rule::FourteenAlternating), vec![13]);
    assert!(fired(&alt[..13], Rule::FourteenAlternating).is_empty());
    assert_eq!(
        fired(&[2.1, 0.0, 2.5], Rule::TwoOfThreeBeyond2Sigma),
        vec![2]
    );
    assert!(fired(&[2.1, 0.0, -2.5], Rule::TwoOfThreeBeyond2Sigma).is_empty());
    assert_eq!(
        fired(&[1.1, 1.2, 0.0, 1.3, 1.5], Rule::FourOfFiveBeyond1Sigma),
        vec![4]
    );
    assert!(fired(&[1.1, 0.2, 0.0, 1.3, 1.5], Rule::FourOfFiveBeyond1Sigma).is_empty());
    let calm = vec![0.1; 15];
    assert_eq!(fired(&calm, Rule::FifteenWithin1Sigma), vec![14]);
    let mix: Vec<f64> = (0..8)
        .map(|i| if i % 3 == 0 { 1.5 } else { -1.5 })
        .collect();
    assert_eq!(fired(&mix, Rule::EightBeyond1Sigma), vec![7]);
    // A violation names the points that broke the rule.
    let v = check_rules(&[2.1, 0.0, 2.5], 0.0, 1.0, &RuleSet::western_electric());
    assert_eq!(v[0].points, vec![0, 2]);
    // NaN (no part measured) neither breaks nor continues a run.
    assert_eq!(
        fired(&[2.1, f64::NAN, 0.0, 2.5], Rule::TwoOfThreeBeyond2Sigma),
        vec![3]
    );
}

#[test]
fn capability_by_hand() {
    // Individuals 9, 11, 9, 11, …: mean 10, MR̄ = 2 → σ_within = 1.773; sample sd ≈ 1.026.
    let x: Vec<f64> = (0..20)
        .map(|i| if i % 2 == 0 { 9.0 } else { 11.0 })
        .collect();
    let c = capability(&x, Some(4.0), Some(16.0)).unwrap();
    let within = 2.0 / 1.128;
    assert!(close(c.cp.unwrap(), 12.0 / (6.0 * within), 1e-9));
    assert!(close(c.cpk.unwrap(), 6.0 / (3.0 * within), 1e-9));
    let sd = (20.0f64 / 19.0).sqrt();
    assert!(close(c.pp.unwrap(), 12.0 / (6.0 * sd), 1e-9));
    let upper_only = capability(&x, None, Some(13.0)).unwrap();
    assert!(upper_only.cp.is_none() && close(upper_only.cpk.unwrap(), 3.0 / (3.0 * within), 1e-9));
    assert!(capability(&x, Some(5.0), Some(5.0)).is_err());
}

/// The simulator's mean shift on cnc2 (1.5 σ for 2 h from 6 h) is caught by the run rules with
/// limits frozen on the first four hours, and the healthy hours after the baseline raise few alarms.
#[test]
fn rules_catch_the_simulators_mean_shift() {
    let plant: gemba_core::Plant =
        toml::from_str(include_str!("../../../examples/plant.toml")).expect("plant");
    let scenario = gemba_sim::Scenario::from_toml(
        "[failures]\nrules = false\nrandom_failure_probability = 0.0\n[quality]\ntool_wear_shift = 0.0\n\
         [production]\nstartup_parts = 0\n\
         [[faults]]\nkind = \"mean_shift\"\nmachine = \"cnc2\"\nat = \"6h\"\nduration = \"2h\"\nmagnitude = 1.5\n",
    )
    .expect("scenario");
    let start = 1_767_571_200_000i64;
    let mut sim = gemba_sim::Simulator::new(&plant, &scenario, start).expect("sim");
    let q = sim
        .signals()
        .iter()
        .position(|s| s.path == "plant1/production/line1/cnc2/diameter")
        .expect("signal");
    let mut tick = sim.new_tick();
    let mut parts: Vec<(i64, f64)> = Vec::new();
    for _ in 0..8 * 3600 {
        sim.step(&mut tick);
        if tick.values[q].is_finite() {
            parts.push((tick.ts, tick.values[q]));
        }
    }
    let h = 3_600_000;
    let baseline: Vec<f64> = parts
        .iter()
        .filter(|p| p.0 < start + 4 * h)
        .map(|p| p.1)
        .collect();
    let imr = Imr::estimate(&baseline).expect("limits");
    let judged: Vec<(i64, f64)> = parts
        .iter()
        .copied()
        .filter(|p| p.0 >= start + 4 * h)
        .collect();
    let values: Vec<f64> = judged.iter().map(|p| p.1).collect();
    let v = check_rules(
        &values,
        imr.individuals.center,
        imr.sigma_within,
        &RuleSet::western_electric(),
    );
    let onset = start + 6 * h;
    let before = v.iter().filter(|x| judged[x.index].0 < onset).count();
    let after: Vec<&Violation> = v.iter().filter(|x| judged[x.index].0 >= onset).collect();
    let n_before = judged.iter().filter(|p| p.0 < onset).count();
    // Western Electric rules give about one false alarm per 92 points in control.
    eprintln!(
        "{before} alarms on {n_before} healthy parts, {} after the shift",
        after.len()
    );
    assert!(n_before > 100, "{n_before} healthy parts");
    assert!(
        before * 25 < n_before,
        "{before} alarms on {n_before} healthy parts"
    );
    assert!(
        after.len() > 20,
        "only {} alarms after the shift",
        after.len()
    );
    let first = judged[after[0].index].0 - onset;
    assert!(
        first < 30 * 60_000,
        "first alarm {first} ms after the onset"
    );
}

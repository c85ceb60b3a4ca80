//! The text of a notification in English or 简体中文: a subject line and a plain-text body.
//! The alarm's own message comes from its rule and stays as the rule wrote it.

use std::fmt::Write as _;

use gemba_core::time::format_rfc3339;
use serde::{Deserialize, Serialize};

use super::{AlarmEvent, Delivery};
use crate::alarms::{AlarmState, Severity};

/// The language of a channel's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
}

/// A rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

struct Words {
    alarm: &'static str,
    rule: &'static str,
    asset: &'static str,
    signal: &'static str,
    severity: &'static str,
    state: &'static str,
    message: &'static str,
    raised_at: &'static str,
    changed_at: &'static str,
    alarm_id: &'static str,
    delivery: &'static str,
    footer: &'static str,
}

const EN: Words = Words {
    alarm: "alarm",
    rule: "Rule",
    asset: "Asset",
    signal: "Signal",
    severity: "Severity",
    state: "State",
    message: "Message",
    raised_at: "Raised at",
    changed_at: "Changed at",
    alarm_id: "Alarm",
    delivery: "Delivery id",
    footer: "Sent by Gemba. The delivery id is the same on every retry of this notification.",
};

const ZH: Words = Words {
    alarm: "告警",
    rule: "规则",
    asset: "资产",
    signal: "信号",
    severity: "严重程度",
    state: "状态",
    message: "说明",
    raised_at: "触发时间",
    changed_at: "变更时间",
    alarm_id: "告警编号",
    delivery: "投递编号",
    footer: "由 Gemba 发送。此通知每次重试的投递编号相同。",
};

fn severity(lang: Language, s: Severity) -> &'static str {
    match (lang, s) {
        (Language::En, Severity::Low) => "LOW",
        (Language::En, Severity::Medium) => "MEDIUM",
        (Language::En, Severity::High) => "HIGH",
        (Language::En, Severity::Critical) => "CRITICAL",
        (Language::ZhCn, Severity::Low) => "低",
        (Language::ZhCn, Severity::Medium) => "中",
        (Language::ZhCn, Severity::High) => "高",
        (Language::ZhCn, Severity::Critical) => "严重",
    }
}

fn event(lang: Language, e: AlarmEvent) -> &'static str {
    match (lang, e) {
        (Language::En, AlarmEvent::Raised) => "raised",
        (Language::En, AlarmEvent::Reraised) => "raised again",
        (Language::En, AlarmEvent::Acknowledged) => "acknowledged",
        (Language::En, AlarmEvent::Cleared) => "cleared",
        (Language::En, AlarmEvent::Closed) => "closed",
        (Language::En, AlarmEvent::Comment) => "commented",
        (Language::ZhCn, AlarmEvent::Raised) => "已触发",
        (Language::ZhCn, AlarmEvent::Reraised) => "再次触发",
        (Language::ZhCn, AlarmEvent::Acknowledged) => "已确认",
        (Language::ZhCn, AlarmEvent::Cleared) => "已恢复",
        (Language::ZhCn, AlarmEvent::Closed) => "已关闭",
        (Language::ZhCn, AlarmEvent::Comment) => "有新评论",
    }
}

fn state(lang: Language, s: AlarmState) -> &'static str {
    match (lang, s) {
        (Language::En, AlarmState::Active) => "active",
        (Language::En, AlarmState::Acknowledged) => "acknowledged",
        (Language::En, AlarmState::Cleared) => "cleared",
        (Language::En, AlarmState::Closed) => "closed",
        (Language::ZhCn, AlarmState::Active) => "活动",
        (Language::ZhCn, AlarmState::Acknowledged) => "已确认",
        (Language::ZhCn, AlarmState::Cleared) => "已恢复",
        (Language::ZhCn, AlarmState::Closed) => "已关闭",
    }
}

/// The subject and body of a delivery in `lang`.
pub fn render(lang: Language, d: &Delivery) -> Rendered {
    let n = &d.notification;
    let w = match lang {
        Language::En => &EN,
        Language::ZhCn => &ZH,
    };
    let subject = match lang {
        Language::En => format!(
            "[Gemba] {} {} {}: {} at {}",
            severity(lang, n.severity),
            w.alarm,
            event(lang, n.event),
            n.rule,
            n.asset
        ),
        Language::ZhCn => format!(
            "[Gemba] {}级{}{}：{}（{}）",
            severity(lang, n.severity),
            w.alarm,
            event(lang, n.event),
            n.rule,
            n.asset
        ),
    };
    let sep = match lang {
        Language::En => ": ",
        Language::ZhCn => "：",
    };
    let mut body = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(body, "{k}{sep}{v}");
    };
    line(w.rule, &n.rule);
    line(w.asset, &n.asset);
    if let Some(s) = &n.signal {
        line(w.signal, s);
    }
    line(w.severity, severity(lang, n.severity));
    line(w.state, state(lang, n.state));
    line(w.message, &n.message);
    line(w.raised_at, &format_rfc3339(n.raised_at));
    line(w.changed_at, &format_rfc3339(d.created_at));
    line(w.alarm_id, &n.alarm_id.to_string());
    line(w.delivery, &d.id);
    body.push('\n');
    body.push_str(w.footer);
    body.push('\n');
    Rendered { subject, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{ChannelKind, DeliveryState, Notification};

    fn delivery() -> Delivery {
        Delivery {
            id: "gemba-0123".into(),
            seq: 1,
            channel: "mail".into(),
            kind: ChannelKind::Email,
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: 1_767_225_600_000,
            next_attempt_at: 0,
            last_attempt_at: None,
            sent_at: None,
            last_error: None,
            notification: Notification {
                event: AlarmEvent::Raised,
                alarm_id: 42,
                rule: "m1-hot".into(),
                severity: Severity::High,
                asset: "s1/a1/l1/m1".into(),
                signal: Some("s1/a1/l1/m1/temp".into()),
                state: AlarmState::Active,
                message: "temp 360 above 350".into(),
                raised_at: 1_767_225_540_000,
                alarm: serde_json::Value::Null,
            },
        }
    }

    #[test]
    fn english_and_chinese_texts_name_the_alarm() {
        let d = delivery();
        let en = render(Language::En, &d);
        assert_eq!(
            en.subject,
            "[Gemba] HIGH alarm raised: m1-hot at s1/a1/l1/m1"
        );
        for needle in [
            "Rule: m1-hot\n",
            "Signal: s1/a1/l1/m1/temp\n",
            "State: active\n",
            "Message: temp 360 above 350\n",
            "Raised at: 2025-12-31T23:59:00",
            "Changed at: 2026-01-01T00:00:00",
            "Alarm: 42\n",
            "Delivery id: gemba-0123\n",
        ] {
            assert!(en.body.contains(needle), "{needle:?} not in {}", en.body);
        }
        let zh = render(Language::ZhCn, &d);
        assert_eq!(zh.subject, "[Gemba] 高级告警已触发：m1-hot（s1/a1/l1/m1）");
        for needle in [
            "规则：m1-hot\n",
            "状态：活动\n",
            "严重程度：高\n",
            "投递编号：gemba-0123\n",
            "由 Gemba 发送",
        ] {
            assert!(zh.body.contains(needle), "{needle:?} not in {}", zh.body);
        }
    }

    #[test]
    fn language_names_in_configuration() {
        let p = |s: &str| serde_json::from_str::<Language>(&format!("{s:?}")).ok();
        assert_eq!(p("en"), Some(Language::En));
        assert_eq!(p("zh-CN"), Some(Language::ZhCn));
        assert_eq!(p("de"), None);
    }
}

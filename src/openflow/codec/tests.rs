//! Byte-exact expectations, worked out by hand from the OpenFlow 1.4.1 specification's
//! structure layouts (`ofp_header`, `ofp_flow_mod`, `ofp_match`, OXM TLVs,
//! `ofp_instruction_actions`, `ofp_action_output`, `ofp_bundle_ctrl_msg`,
//! `ofp_bundle_add_msg`, `ofp_multipart_request`, `ofp_port`).

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

fn no_ports(_: &str) -> Option<u32> {
    None
}

fn add(priority: u16, fields: Vec<Field>, action: Action) -> FlowChange {
    FlowChange::Add(Flow {
        cookie: 0x8000_0000_0000_0002,
        priority,
        fields,
        action,
    })
}

/// The OXM TLVs of an encoded FLOW_MOD (after the 48 fixed bytes and the 4 of `ofp_match`).
fn oxm_of(message: &[u8]) -> &[u8] {
    let length = usize::from(u16::from_be_bytes([message[50], message[51]]));
    &message[52..48 + length]
}

fn oxm_of_change(change: &FlowChange) -> Vec<u8> {
    oxm_of(&flow_mod(1, change, &|name| (name == "gvx").then_some(7)).unwrap()).to_vec()
}

#[test]
fn hello_offers_exactly_1_4() {
    assert_eq!(
        hello(7),
        [0x05, 0x00, 0x00, 0x10, 0, 0, 0, 7, 0x00, 0x01, 0x00, 0x08, 0, 0, 0, 0x20]
    );
}

#[test]
fn the_switch_hello_decides_the_version() {
    let with_bitmap = |bits: u32| {
        let mut m = vec![0x06, 0x00, 0x00, 0x10, 0, 0, 0, 1, 0x00, 0x01, 0x00, 0x08];
        m.extend_from_slice(&bits.to_be_bytes());
        m
    };
    // OVS offering 1.0 to 1.5.
    assert!(hello_accepts_1_4(&with_bitmap(0b0111_1110)).unwrap());
    // 1.0 and 1.3 only.
    assert!(!hello_accepts_1_4(&with_bitmap(0b0001_0010)).unwrap());
    // No bitmap: the header's version is the highest the switch speaks.
    assert!(hello_accepts_1_4(&[0x06, 0, 0, 8, 0, 0, 0, 1]).unwrap());
    assert!(!hello_accepts_1_4(&[0x04, 0, 0, 8, 0, 0, 0, 1]).unwrap());
    // An element whose length runs past the message.
    assert!(hello_accepts_1_4(&[0x05, 0, 0, 12, 0, 0, 0, 1, 0, 1, 0, 9]).is_err());
}

#[test]
fn bundle_control_is_atomic_and_ordered() {
    assert_eq!(
        bundle_control(3, 1, bundle::OPEN_REQUEST),
        [0x05, 0x21, 0x00, 0x10, 0, 0, 0, 3, 0, 0, 0, 1, 0x00, 0x00, 0x00, 0x03]
    );
    assert_eq!(
        bundle_control(9, 1, bundle::COMMIT_REQUEST)[12..],
        [0x00, 0x04, 0x00, 0x03]
    );
    let reply = [
        0x05, 0x21, 0x00, 0x10, 0, 0, 0, 9, 0, 0, 0, 1, 0x00, 0x05, 0x00, 0x03,
    ];
    assert_eq!(
        parse_bundle_control(&reply).unwrap(),
        BundleControl {
            id: 1,
            control: bundle::COMMIT_REPLY
        }
    );
    assert!(parse_bundle_control(&reply[..12]).is_err());
}

#[test]
fn delete_by_cookie_covers_every_table_with_an_exact_cookie() {
    let message = flow_mod(
        9,
        &FlowChange::DeleteCookie(0x8000_0000_0000_0002),
        &no_ports,
    )
    .unwrap();
    #[rustfmt::skip]
    let expected = [
        0x05, 0x0e, 0x00, 0x38, 0, 0, 0, 9,
        0x80, 0, 0, 0, 0, 0, 0, 0x02,                   // cookie
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // cookie_mask: all bits
        0xff, 0x03,                                     // OFPTT_ALL, OFPFC_DELETE
        0, 0, 0, 0,                                     // idle, hard timeout
        0, 0,                                           // priority
        0xff, 0xff, 0xff, 0xff,                         // OFP_NO_BUFFER
        0xff, 0xff, 0xff, 0xff,                         // OFPP_ANY
        0xff, 0xff, 0xff, 0xff,                         // OFPG_ANY
        0, 0, 0, 0,                                     // flags, importance
        0x00, 0x01, 0x00, 0x04, 0, 0, 0, 0,             // empty OXM match, padded
    ];
    assert_eq!(message, expected);
}

#[test]
fn a_normal_flow_outputs_to_ofpp_normal() {
    let change = FlowChange::Add(Flow {
        cookie: 0x6776_0000_0000_1389,
        priority: 100,
        fields: vec![Field::TunId(5001)],
        action: Action::Normal,
    });
    let message = flow_mod(10, &change, &no_ports).unwrap();
    #[rustfmt::skip]
    let expected = [
        0x05, 0x0e, 0x00, 0x58, 0, 0, 0, 10,
        0x67, 0x76, 0, 0, 0, 0, 0x13, 0x89,             // cookie
        0, 0, 0, 0, 0, 0, 0, 0,                         // cookie_mask
        0x00, 0x00,                                     // table 0, OFPFC_ADD
        0, 0, 0, 0,
        0x00, 0x64,                                     // priority 100
        0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff,
        0, 0, 0, 0,
        0x00, 0x01, 0x00, 0x10,                         // OXM match of 16 bytes
        0x80, 0x00, 0x4c, 0x08, 0, 0, 0, 0, 0, 0, 0x13, 0x89, // TUNNEL_ID 5001
        0x00, 0x04, 0x00, 0x18, 0, 0, 0, 0,             // APPLY_ACTIONS, 24 bytes
        0x00, 0x00, 0x00, 0x10,                         // OUTPUT, 16 bytes
        0xff, 0xff, 0xff, 0xfa,                         // OFPP_NORMAL
        0x00, 0x00, 0, 0, 0, 0, 0, 0,                   // max_len, pad
    ];
    assert_eq!(message, expected);
}

#[test]
fn a_drop_flow_has_no_instructions_and_a_padded_match() {
    let change = add(
        260,
        vec![
            Field::InPort("gvx".into()),
            Field::Proto(Proto::Icmp6),
            Field::Untagged,
            Field::DlSrc(MAC),
            Field::Ipv6Src(Ipv6Addr::UNSPECIFIED),
            Field::Icmpv6Type(135),
            Field::Icmpv6Code(0),
            Field::NdTarget("fd12::5".parse().unwrap()),
            Field::NdSll([0; 6]),
        ],
        Action::Drop,
    );
    let message = flow_mod(1, &change, &|name| (name == "gvx").then_some(7)).unwrap();
    // 48 fixed bytes, a match of 4 + 95 bytes padded to 104, nothing after it.
    assert_eq!(message.len(), 152);
    assert_eq!(&message[2..4], [0, 152]);
    assert_eq!(&message[48..52], [0x00, 0x01, 0x00, 99]);
    assert_eq!(&message[147..], [0; 5]);
    let mut target = [0u8; 16];
    target[0] = 0xfd;
    target[1] = 0x12;
    target[15] = 0x05;
    #[rustfmt::skip]
    let mut expected = vec![
        0x80, 0x00, 0x00, 0x04, 0, 0, 0, 7,             // IN_PORT 7
        0x80, 0x00, 0x08, 0x06, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // ETH_SRC
        0x80, 0x00, 0x0a, 0x02, 0x86, 0xdd,             // ETH_TYPE IPv6
        0x80, 0x00, 0x0c, 0x02, 0x00, 0x00,             // VLAN_VID none
        0x80, 0x00, 0x14, 0x01, 58,                     // IP_PROTO ICMPv6
        0x80, 0x00, 0x34, 0x10,                         // IPV6_SRC ::
    ];
    expected.extend_from_slice(&[0; 16]);
    expected.extend_from_slice(&[0x80, 0x00, 0x3a, 0x01, 135]); // ICMPV6_TYPE
    expected.extend_from_slice(&[0x80, 0x00, 0x3c, 0x01, 0]); // ICMPV6_CODE
    expected.extend_from_slice(&[0x80, 0x00, 0x3e, 0x10]); // IPV6_ND_TARGET
    expected.extend_from_slice(&target);
    expected.extend_from_slice(&[0x80, 0x00, 0x40, 0x06, 0, 0, 0, 0, 0, 0]); // IPV6_ND_SLL
    assert_eq!(oxm_of(&message), expected);
}

#[test]
fn every_other_field_has_its_oxm() {
    let bfd = oxm_of_change(&add(
        300,
        vec![Field::DlDst([0, 0x23, 0x20, 0, 0, 1])],
        Action::Drop,
    ));
    assert_eq!(bfd, [0x80, 0x00, 0x06, 0x06, 0, 0x23, 0x20, 0, 0, 1]);

    let dhcp = oxm_of_change(&add(
        200,
        vec![
            Field::Proto(Proto::Udp),
            Field::NwSrc(Ipv4Addr::new(192, 168, 120, 5)),
            Field::TpSrc(68),
            Field::TpDst(67),
        ],
        Action::Normal,
    ));
    #[rustfmt::skip]
    assert_eq!(dhcp, [
        0x80, 0x00, 0x0a, 0x02, 0x08, 0x00,             // ETH_TYPE IPv4
        0x80, 0x00, 0x14, 0x01, 17,                     // IP_PROTO UDP
        0x80, 0x00, 0x16, 0x04, 192, 168, 120, 5,       // IPV4_SRC
        0x80, 0x00, 0x1e, 0x02, 0, 68,                  // UDP_SRC
        0x80, 0x00, 0x20, 0x02, 0, 67,                  // UDP_DST
    ]);

    let arp = oxm_of_change(&add(
        200,
        vec![
            Field::Proto(Proto::Arp),
            Field::ArpOp(1),
            Field::ArpSpa(Ipv4Addr::UNSPECIFIED),
            Field::ArpSha(MAC),
        ],
        Action::Normal,
    ));
    #[rustfmt::skip]
    assert_eq!(arp, [
        0x80, 0x00, 0x0a, 0x02, 0x08, 0x06,             // ETH_TYPE ARP
        0x80, 0x00, 0x2a, 0x02, 0, 1,                   // ARP_OP request
        0x80, 0x00, 0x2c, 0x04, 0, 0, 0, 0,             // ARP_SPA 0.0.0.0
        0x80, 0x00, 0x30, 0x06, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55, // ARP_SHA
    ]);

    let redirect = oxm_of_change(&add(
        300,
        vec![Field::Proto(Proto::Icmp), Field::IcmpType(5)],
        Action::Drop,
    ));
    #[rustfmt::skip]
    assert_eq!(redirect, [
        0x80, 0x00, 0x0a, 0x02, 0x08, 0x00,
        0x80, 0x00, 0x14, 0x01, 1,                      // IP_PROTO ICMP
        0x80, 0x00, 0x26, 0x01, 5,                      // ICMPV4_TYPE
    ]);

    let advert = oxm_of_change(&add(
        260,
        vec![
            Field::Proto(Proto::Icmp6),
            Field::Icmpv6Type(136),
            Field::NdTll(MAC),
        ],
        Action::Normal,
    ));
    assert_eq!(
        advert[advert.len() - 10..],
        [0x80, 0x00, 0x42, 0x06, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55]
    );

    let gateway = oxm_of_change(&add(
        100,
        vec![Field::InPort("65279".into())],
        Action::Normal,
    ));
    assert_eq!(gateway, [0x80, 0x00, 0x00, 0x04, 0, 0, 0xfe, 0xff]);
}

#[test]
fn the_field_order_of_the_flow_does_not_matter() {
    let a = add(
        200,
        vec![
            Field::Proto(Proto::Ipv6),
            Field::Untagged,
            Field::Ipv6Src("fe80::1".parse().unwrap()),
            Field::InPort("gvx".into()),
        ],
        Action::Normal,
    );
    let FlowChange::Add(mut flow) = a.clone() else {
        unreachable!()
    };
    flow.fields.reverse();
    assert_eq!(oxm_of_change(&a), oxm_of_change(&FlowChange::Add(flow)));
}

#[test]
fn missing_prerequisites_and_unknown_ports_are_refused() {
    let error = |fields: Vec<Field>| {
        format!(
            "{:#}",
            flow_mod(1, &add(1, fields, Action::Drop), &no_ports).unwrap_err()
        )
    };
    assert!(error(vec![Field::NwSrc(Ipv4Addr::LOCALHOST)]).contains("nw_src without ip"));
    assert!(error(vec![Field::Proto(Proto::Icmp), Field::TpSrc(67)]).contains("tp_src"));
    assert!(error(vec![Field::Proto(Proto::Ip), Field::IcmpType(5)]).contains("icmp_type"));
    assert!(error(vec![
        Field::Proto(Proto::Icmp6),
        Field::Icmpv6Type(136),
        Field::NdSll(MAC)
    ])
    .contains("nd_sll"));
    assert!(error(vec![
        Field::Proto(Proto::Icmp6),
        Field::NdTarget(Ipv6Addr::LOCALHOST)
    ])
    .contains("nd_target"));
    assert!(error(vec![Field::ArpSpa(Ipv4Addr::LOCALHOST)]).contains("ARP fields"));
    assert!(error(vec![Field::Proto(Proto::Arp), Field::Proto(Proto::Ip)]).contains("both"));
    let unknown = error(vec![Field::InPort("gvmissing".into())]);
    assert!(unknown.contains("no port gvmissing"), "{unknown}");
}

#[test]
fn bundle_add_wraps_the_message_under_its_xid() {
    let inner = flow_mod(42, &FlowChange::DeleteCookie(1), &no_ports).unwrap();
    let outer = bundle_add(1, &inner).unwrap();
    assert_eq!(outer.len(), 16 + inner.len());
    assert_eq!(&outer[..8], [0x05, 0x22, 0x00, 0x48, 0, 0, 0, 42]);
    assert_eq!(&outer[8..16], [0, 0, 0, 1, 0, 0, 0x00, 0x03]);
    assert_eq!(&outer[16..], inner.as_slice());
}

#[test]
fn port_descriptions_give_numbers_by_name() {
    assert_eq!(
        port_desc_request(5),
        [0x05, 0x12, 0x00, 0x10, 0, 0, 0, 5, 0x00, 0x0d, 0, 0, 0, 0, 0, 0]
    );
    let port = |number: u32, name: &str, properties: usize| {
        let mut p = number.to_be_bytes().to_vec();
        p.extend_from_slice(&((40 + properties) as u16).to_be_bytes());
        p.extend_from_slice(&[0; 2]);
        p.extend_from_slice(&MAC);
        p.extend_from_slice(&[0; 2]);
        let mut field = [0u8; 16];
        field[..name.len()].copy_from_slice(name.as_bytes());
        p.extend_from_slice(&field);
        p.extend_from_slice(&[0; 8]); // config, state
        p.extend(std::iter::repeat_n(0xaa, properties));
        p
    };
    let mut reply = vec![
        0x05, 0x13, 0, 0, 0, 0, 0, 5, 0x00, 0x0d, 0x00, 0x01, 0, 0, 0, 0,
    ];
    reply.extend(port(7, "gv0123456789abc", 32));
    reply.extend(port(0xffff_fffe, "gnv5", 0));
    let length = reply.len() as u16;
    reply[2..4].copy_from_slice(&length.to_be_bytes());
    assert_eq!(
        parse_port_desc_reply(&reply).unwrap(),
        PortDescPart {
            ports: vec![
                ("gv0123456789abc".to_string(), 7),
                ("gnv5".to_string(), 0xffff_fffe)
            ],
            more: true,
        }
    );
    // A port cut short.
    let mut cut = reply[..reply.len() - 4].to_vec();
    cut[2..4].copy_from_slice(&(length - 4).to_be_bytes());
    assert!(parse_port_desc_reply(&cut).is_err());
}

#[test]
fn errors_say_what_the_switch_refused() {
    let message = [0x05, 0x01, 0x00, 0x0c, 0, 0, 0, 3, 0x00, 0x05, 0x00, 0x01];
    let error = parse_error(&message).unwrap();
    assert_eq!(error, SwitchError { kind: 5, code: 1 });
    assert_eq!(
        error.to_string(),
        "FLOW_MOD_FAILED (type 5), TABLE_FULL (code 1)"
    );
    assert_eq!(
        SwitchError { kind: 99, code: 4 }.to_string(),
        "error (type 99), code 4"
    );
    assert!(parse_error(&message[..10]).is_err());
}

#[test]
fn echo_requests_are_answered_with_their_data() {
    let request = [0x05, 0x02, 0x00, 0x0a, 0, 0, 0, 8, 0xab, 0xcd];
    assert_eq!(
        echo_reply(&request).unwrap(),
        [0x05, 0x03, 0x00, 0x0a, 0, 0, 0, 8, 0xab, 0xcd]
    );
}

#[test]
fn headers_shorter_than_themselves_are_refused() {
    assert!(Header::parse(&[5, 0, 0, 7, 0, 0, 0, 1]).is_err());
    assert!(Header::parse(&[5, 0, 0]).is_err());
    assert_eq!(
        Header::parse(&[5, 19, 0, 16, 0, 0, 1, 2]).unwrap(),
        Header {
            version: 5,
            kind: 19,
            length: 16,
            xid: 0x102
        }
    );
}

proptest! {
    /// Whatever the switch sends, decoding never panics.
    #[test]
    fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Header::parse(&bytes);
        let _ = hello_accepts_1_4(&bytes);
        let _ = parse_bundle_control(&bytes);
        let _ = parse_port_desc_reply(&bytes);
        let _ = parse_error(&bytes);
        let _ = echo_reply(&bytes);
    }
}

//! The classic group protocol on the core's coordinator: FindCoordinator 0-4 (this broker for every group),
//! JoinGroup 0-9, SyncGroup 0-5, Heartbeat 0-4, LeaveGroup 0-5, ListGroups 0-5 and DescribeGroups 0-5.
//!
//! The face only translates: members, generations, the leader's assignment bytes (passed through untouched)
//! and every error are the coordinator's, which the gRPC face's groups share. MEMBER_ID_REQUIRED is asked
//! for only from JoinGroup v4 on (older clients loop on it); static membership (`group.instance.id`) exists
//! from v5 on, as in Kafka's message definitions.

use std::time::Duration;

use bytes::Bytes;
use janus_core::Core;
use janus_core::groups::{GroupState, JoinGroupRequest as CoreJoin, JoinOutcome, SyncGroupRequest as CoreSync};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{INVALID_REQUEST, MEMBER_ID_REQUIRED, UNKNOWN_MEMBER_ID, check_group, group_error};
use super::metadata::NODE_ID;
use super::{Caller, KafkaContext};

/// FindCoordinator's key type for consumer groups (1 is transactions, not served).
const GROUP_KEY: i8 = 0;
/// The longest client id kept for a member (the coordinator's limit on names); a longer one, such as the
/// Java client's `consumer-<group>-<n>` with a long group id, is cut at a character boundary.
const MAX_CLIENT_ID_BYTES: usize = janus_core::groups::coordinator::MAX_MEMBER_NAME_LEN;
/// "Not asked for" in the authorized-operations field.
const NO_OPERATIONS: i32 = i32::MIN;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn optional_text(s: Option<&StrBytes>) -> Option<String> {
    s.map(|s| s.to_string()).filter(|s| !s.is_empty())
}

/// A timeout in milliseconds from the wire; a negative one becomes 0, which the core refuses.
fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// FindCoordinator: this broker coordinates every group. A transaction coordinator is refused: Kafka
/// transactions are not served.
pub fn find_coordinator(ctx: &KafkaContext, req: &FindCoordinatorRequest, version: i16) -> FindCoordinatorResponse {
    let (host, port) = &ctx.advertised;
    let answer_for = |key: &StrBytes| {
        let coordinator = Coordinator::default().with_key(key.clone());
        match req.key_type {
            GROUP_KEY => coordinator.with_node_id(BrokerId(NODE_ID)).with_host(text(host)).with_port(*port),
            // INVALID_REQUEST, not the retriable COORDINATOR_NOT_AVAILABLE: a transactional producer fails at
            // once and says why instead of retrying until its timeout.
            1 => coordinator
                .with_node_id(BrokerId(-1))
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(text("Kafka transactions are not served by this broker"))),
            other => coordinator
                .with_node_id(BrokerId(-1))
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(text(&format!("unknown coordinator key type {other}")))),
        }
    };
    if version >= 4 {
        let coordinators = req.coordinator_keys.iter().map(answer_for).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let one = answer_for(&req.key);
    FindCoordinatorResponse::default()
        .with_error_code(one.error_code)
        .with_error_message(one.error_message)
        .with_node_id(one.node_id)
        .with_host(one.host)
        .with_port(one.port)
}

/// JoinGroup: completes when the group's join phase ends.
pub async fn join(core: &Core, caller: &Caller, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    let session_timeout = millis(req.session_timeout_ms);
    let request = CoreJoin {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: optional_text(req.group_instance_id.as_ref()),
        client_id: caller.client_id_within(MAX_CLIENT_ID_BYTES),
        client_host: caller.host(),
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| (p.name.to_string(), p.metadata)).collect(),
        session_timeout,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: if version == 0 { session_timeout } else { millis(req.rebalance_timeout_ms) },
        require_known_member_id: version >= 4,
    };
    // protocol_name is a plain string before v7 and may not be null there.
    let failed = |code: i16, member_id: String| {
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_protocol_name(Some(StrBytes::default()))
            .with_member_id(StrBytes::from_string(member_id))
    };
    let asked_member = request.member_id.clone();
    if let Err(code) = check_group(&request.group) {
        return failed(code, asked_member);
    }
    match core.join_group(request).await {
        Ok(JoinOutcome::Joined(joined)) => {
            let members = joined
                .members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(m.member_id))
                        .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                        .with_metadata(m.metadata)
                })
                .collect();
            JoinGroupResponse::default()
                .with_generation_id(joined.generation)
                .with_protocol_type(Some(StrBytes::from_string(joined.protocol_type)))
                .with_protocol_name(Some(StrBytes::from_string(joined.protocol_name)))
                .with_leader(StrBytes::from_string(joined.leader))
                .with_member_id(StrBytes::from_string(joined.member_id))
                .with_members(members)
        }
        Ok(JoinOutcome::MemberIdRequired { member_id }) => failed(MEMBER_ID_REQUIRED, member_id),
        Err(e) => failed(group_error(&e), asked_member),
    }
}

/// SyncGroup: the leader's assignment bytes, untouched; a member the leader left out gets zero bytes.
pub async fn sync(core: &Core, req: SyncGroupRequest) -> SyncGroupResponse {
    let request = CoreSync {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: optional_text(req.group_instance_id.as_ref()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.map(|s| s.to_string()),
        protocol_name: req.protocol_name.map(|s| s.to_string()),
        assignments: req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    if let Err(code) = check_group(&request.group) {
        return SyncGroupResponse::default().with_error_code(code);
    }
    match core.sync_group(request).await {
        Ok(synced) => SyncGroupResponse::default()
            .with_protocol_type(Some(StrBytes::from_string(synced.protocol_type)))
            .with_protocol_name(Some(StrBytes::from_string(synced.protocol_name)))
            .with_assignment(synced.assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(group_error(&e)).with_assignment(Bytes::new()),
    }
}

/// Heartbeat: REBALANCE_IN_PROGRESS tells the member to rejoin.
pub async fn heartbeat(core: &Core, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = optional_text(req.group_instance_id.as_ref());
    let result = core.classic_heartbeat(&req.group_id.0, &req.member_id, instance.as_deref(), req.generation_id).await;
    HeartbeatResponse::default().with_error_code(result.err().map_or(0, |e| group_error(&e)))
}

/// LeaveGroup: one member (v0-2) or a batch of members by id or static instance id (v3 and later), each
/// with its own error.
pub async fn leave(core: &Core, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    if let Err(code) = check_group(&group) {
        return LeaveGroupResponse::default().with_error_code(code);
    }
    if version < 3 {
        let result = core.leave_group(&group, &req.member_id, None).await;
        return LeaveGroupResponse::default().with_error_code(result.err().map_or(0, |e| group_error(&e)));
    }
    let mut members = Vec::with_capacity(req.members.len());
    for m in req.members {
        let instance = optional_text(m.group_instance_id.as_ref());
        let result = if m.member_id.is_empty() && instance.is_none() {
            Err(UNKNOWN_MEMBER_ID)
        } else {
            core.leave_group(&group, &m.member_id, instance.as_deref()).await.map_err(|e| group_error(&e))
        };
        members.push(
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(result.err().unwrap_or(0)),
        );
    }
    LeaveGroupResponse::default().with_members(members)
}

/// Kafka's group type for ListGroups v5, the same for every group: `classic`. Janus's broker-assigned
/// groups are not Kafka's KIP-848 `consumer` groups (this face does not serve ConsumerGroupDescribe), so a
/// Kafka admin client must not take them for those; their protocol type `janus` tells them apart.
const GROUP_TYPE: &str = "classic";

/// ListGroups: every group with members or committed offsets, filtered by state (v4) and type (v5).
pub async fn list(core: &Core, req: &ListGroupsRequest) -> ListGroupsResponse {
    let listings = match core.list_groups().await {
        Ok(l) => l,
        Err(e) => return ListGroupsResponse::default().with_error_code(group_error(&e)),
    };
    let wanted =
        |filter: &[StrBytes], value: &str| filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value));
    let groups = listings
        .into_iter()
        .filter(|l| wanted(&req.states_filter, l.state.name()) && wanted(&req.types_filter, GROUP_TYPE))
        .map(|l| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(l.group)))
                .with_protocol_type(StrBytes::from_string(l.protocol_type))
                .with_group_state(text(l.state.name()))
                .with_group_type(text(GROUP_TYPE))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups: state, protocol and members with their metadata and assignment bytes. A group the
/// broker does not know is `Dead` with no members, as Kafka answers.
pub async fn describe(core: &Core, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    let mut seen = std::collections::HashSet::new();
    // Each distinct group once: a request repeating one id must not buy repeated work.
    for group_id in req.groups.into_iter().filter(|g| seen.insert(g.0.clone())) {
        let entry = DescribedGroup::default().with_authorized_operations(NO_OPERATIONS);
        if let Err(code) = check_group(&group_id.0) {
            groups.push(entry.with_group_id(group_id).with_error_code(code));
            continue;
        }
        groups.push(match core.describe_group(&group_id.0).await {
            Ok(d) => {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(StrBytes::from_string(m.member_id))
                            .with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                            .with_client_id(StrBytes::from_string(m.client_id))
                            .with_client_host(StrBytes::from_string(m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment_bytes)
                    })
                    .collect();
                entry
                    .with_group_id(group_id)
                    .with_group_state(text(d.state.name()))
                    .with_protocol_type(StrBytes::from_string(d.protocol_type))
                    .with_protocol_data(StrBytes::from_string(d.assignor))
                    .with_members(members)
            }
            Err(e) if e.code() == janus_core::ErrorCode::UnknownGroup => {
                entry.with_group_id(group_id).with_group_state(text(GroupState::Dead.name()))
            }
            Err(e) => entry.with_group_id(group_id).with_error_code(group_error(&e)),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}

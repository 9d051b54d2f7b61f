import Foundation
import Testing

@testable import DeviceStatus

@Suite struct AvailabilityPlanTests {
    let key = DeviceKey(type: "tasmota", id: "plug1")
    let base = "home/monitoring"

    func plan(publish: Bool = true, homeassistant: Bool = false, types: [String] = []) -> AvailabilityPlan {
        AvailabilityPlan(
            settings: AvailabilitySettings(publish: publish, homeassistant: homeassistant, types: types),
            baseTopic: base)
    }

    func texts(_ publications: [AvailabilityPublication]) -> [String] { publications.map(\.description) }

    @Test func onlineIsOnlineAndEveryOtherStatusIsOffline() {
        #expect(AvailabilityValue(.online) == .online)
        for state in [DeviceState.offline, .sleeping, .expired, .unknown] {
            #expect(AvailabilityValue(state) == .offline, "\(state)")
        }
    }

    @Test func aTransitionPublishesTheNewValueOnlyWhenItDiffersFromWhatTheBrokerHolds() {
        let plan = plan()
        let online = plan.desired(key, state: .online)
        #expect(
            texts(AvailabilityPlan.publications(from: nil, to: online, key: key, baseTopic: base)) == [
                "availability home/monitoring/availability/tasmota/plug1 online"
            ])
        // online → sleeping: the topic reads offline.
        let sleeping = plan.desired(key, state: .sleeping)
        #expect(
            texts(AvailabilityPlan.publications(from: online, to: sleeping, key: key, baseTopic: base)) == [
                "availability home/monitoring/availability/tasmota/plug1 offline"
            ])
        // sleeping → expired: still offline, nothing to publish.
        let expired = plan.desired(key, state: .expired)
        #expect(AvailabilityPlan.publications(from: sleeping, to: expired, key: key, baseTopic: base).isEmpty)
    }

    @Test func aDeletedDeviceClearsBothTopics() {
        let held = plan(homeassistant: true).desired(key, state: .online)!
        let publications = AvailabilityPlan.publications(from: held, to: nil, key: key, baseTopic: base)
        #expect(
            texts(publications) == [
                "cleared home/monitoring/availability/tasmota/plug1 ",
                "cleared homeassistant/binary_sensor/devstatusd_tasmota_plug1/config ",
            ])
        #expect(publications.allSatisfy { $0.payload.isEmpty })
        // A device nobody published for has nothing to clear.
        #expect(AvailabilityPlan.publications(from: nil, to: nil, key: key, baseTopic: base).isEmpty)
    }

    @Test func typesLimitBothPublicationsAndADeselectedTypeIsCleared() {
        let limited = plan(homeassistant: true, types: ["z2m"])
        #expect(limited.desired(key, state: .online) == nil)
        #expect(limited.desired(DeviceKey(type: "z2m", id: "lamp"), state: .online) != nil)
        let held = plan(homeassistant: true).desired(key, state: .online)
        #expect(
            AvailabilityPlan.publications(
                from: held, to: limited.desired(key, state: .online), key: key, baseTopic: base
            ).map(\.kind) == [.cleared, .cleared])
    }

    @Test func nothingIsPublishedWhenDisabledAndWhatWasPublishedIsCleared() {
        let off = plan(publish: false)
        #expect(!off.isActive)
        #expect(off.desired(key, state: .online) == nil)
        let held = plan().desired(key, state: .online)
        #expect(
            texts(AvailabilityPlan.publications(from: held, to: nil, key: key, baseTopic: base)) == [
                "cleared home/monitoring/availability/tasmota/plug1 "
            ])
    }

    @Test func discoveryGoesOutOnceBeforeTheValueAndAgainOnlyWhenItsConfigChanges() {
        let ha = plan(publish: false, homeassistant: true)
        #expect(ha.isActive)
        let first = ha.desired(key, state: .online)
        #expect(
            AvailabilityPlan.publications(from: nil, to: first, key: key, baseTopic: base).map(\.kind) == [
                .discovery, .availability,
            ])
        // A transition: the value only.
        let offline = ha.desired(key, state: .offline)
        #expect(
            AvailabilityPlan.publications(from: first, to: offline, key: key, baseTopic: base).map(\.kind) == [
                .availability
            ])
        // The base topic moved: the old availability topic is cleared, the config (its state_topic changed) and the
        // value go to their new places.
        let moved = AvailabilityPlan(settings: ha.settings, baseTopic: "site2").desired(key, state: .offline)
        #expect(
            AvailabilityPlan.publications(from: offline, to: moved, key: key, baseTopic: "site2").map {
                "\($0.kind) \($0.topic)"
            } == [
                "cleared home/monitoring/availability/tasmota/plug1",
                "discovery homeassistant/binary_sensor/devstatusd_tasmota_plug1/config",
                "availability site2/availability/tasmota/plug1",
            ])
        // Another prefix: the old config is cleared and the new one published; the value stays.
        var prefixed = ha.settings
        prefixed.discoveryPrefix = "ha2"
        let elsewhere = AvailabilityPlan(settings: prefixed, baseTopic: base).desired(key, state: .offline)
        #expect(
            AvailabilityPlan.publications(from: offline, to: elsewhere, key: key, baseTopic: base).map(\.topic) == [
                "homeassistant/binary_sensor/devstatusd_tasmota_plug1/config",
                "ha2/binary_sensor/devstatusd_tasmota_plug1/config",
            ])
    }

    @Test func objectIDKeepsSafeKeysReadableAndMakesOthersSafeAndDistinct() {
        #expect(HomeAssistantDiscovery.objectID(key) == "devstatusd_tasmota_plug1")
        #expect(HomeAssistantDiscovery.objectID(DeviceKey(type: "type-1", id: "ps_1")) == "devstatusd_type-1_ps_1")
        let lamp = HomeAssistantDiscovery.objectID(DeviceKey(type: "z2m", id: "room/lamp"))
        let spaced = HomeAssistantDiscovery.objectID(DeviceKey(type: "z2m", id: "room lamp"))
        let plain = HomeAssistantDiscovery.objectID(DeviceKey(type: "z2m", id: "room_lamp"))
        #expect(lamp.hasPrefix("devstatusd_z2m_room_lamp_"))
        #expect(lamp.count == "devstatusd_z2m_room_lamp_".count + 16)
        #expect(Set([lamp, spaced, plain]).count == 3)
        // A type with '_' would make the split between type and id ambiguous.
        let a = HomeAssistantDiscovery.objectID(DeviceKey(type: "a_b", id: "c"))
        let b = HomeAssistantDiscovery.objectID(DeviceKey(type: "a", id: "b_c"))
        #expect(a != b)
        let sparkplug = HomeAssistantDiscovery.objectID(DeviceKey(type: "Plant 1", id: "node.7/Pümpe"))
        for id in [lamp, spaced, a, sparkplug] {
            #expect(id.utf8.allSatisfy { $0 == 0x5F || $0 == 0x2D || isalnum(Int32($0)) != 0 }, "\(id)")
        }
        // Stable across runs (a stored fingerprint compares with it).
        #expect(HomeAssistantDiscovery.objectID(DeviceKey(type: "z2m", id: "room/lamp")) == lamp)
    }

    @Test func discoveryConfigCarriesEveryKeyHomeAssistantNeeds() throws {
        let zigbee = DeviceKey(type: "z2m", id: "room/lamp")
        let text = HomeAssistantDiscovery.config(
            key: zigbee, stateTopic: "home/monitoring/availability/z2m/room/lamp", baseTopic: base)
        let json = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let id = HomeAssistantDiscovery.objectID(zigbee)
        #expect(json["name"] is NSNull)
        #expect(json["unique_id"] as? String == id)
        #expect(json["device_class"] as? String == "connectivity")
        #expect(json["state_topic"] as? String == "home/monitoring/availability/z2m/room/lamp")
        #expect(json["payload_on"] as? String == "online")
        #expect(json["payload_off"] as? String == "offline")
        #expect(json["availability_topic"] as? String == "home/monitoring/daemon")
        #expect(json["payload_available"] as? String == "online")
        #expect(json["payload_not_available"] as? String == "offline")
        #expect(json["qos"] as? Int == 1)
        let device = try #require(json["device"] as? [String: Any])
        #expect(device["identifiers"] as? [String] == [id])
        #expect(device["name"] as? String == "z2m/room/lamp")
        #expect(device["model"] as? String == "z2m")
        let origin = try #require(json["origin"] as? [String: Any])
        #expect(origin["name"] as? String == "devstatusd")
        #expect(origin["sw_version"] as? String == DeviceStatusVersion.string)
        #expect(json.count == 12)
    }

    @Test func recordsSurviveTheStoreAndRefuseForeignBytes() {
        let record = AvailabilityRecord(
            availabilityTopic: "home/monitoring/availability/z2m/room/lamp", value: .offline,
            discoveryTopic: "homeassistant/binary_sensor/x/config", discoveryHash: 0xDEAD_BEEF_0123_4567)
        #expect(AvailabilityRecord(encoded: record.encoded) == record)
        let plain = AvailabilityRecord(
            availabilityTopic: "b/availability/t/i", value: .online, discoveryTopic: "", discoveryHash: 0)
        #expect(AvailabilityRecord(encoded: plain.encoded) == plain)
        #expect(AvailabilityRecord(encoded: [UInt8]()) == nil)
        #expect(AvailabilityRecord(encoded: [2] + record.encoded.dropFirst()) == nil)
        #expect(AvailabilityRecord(encoded: record.encoded.dropLast()) == nil)
    }

    @Test func pacerLetsABurstThroughThenHoldsTheRate() {
        var pacer = PublicationPacer(messagesPerSecond: 1000, burst: 100)
        // 100 messages at once: within the burst.
        #expect(pacer.reserve(100, now: .zero) == .zero)
        // 100 more at once: 100 ms of rate beyond the burst.
        #expect(pacer.reserve(100, now: .zero) == .milliseconds(100))
        // After waiting, the next round is due again.
        #expect(pacer.reserve(100, now: .milliseconds(100)) == .milliseconds(100))
        // After a long quiet spell the bucket is full again, not more than full.
        #expect(pacer.reserve(100, now: .seconds(10)) == .zero)
        #expect(pacer.reserve(100, now: .seconds(10)) == .milliseconds(100))
    }

    @Test func queueHandsOutEachPathOnceInArrivalOrder() {
        var queue = PathQueue()
        for path in ["a/1", "b/2", "a/1", "c/3"] { queue.append(path) }
        #expect(queue.count == 3)
        #expect(queue.take(2) == ["a/1", "b/2"])
        queue.append("a/1")
        #expect(queue.take(10) == ["c/3", "a/1"])
        #expect(queue.take(10).isEmpty)
    }
}

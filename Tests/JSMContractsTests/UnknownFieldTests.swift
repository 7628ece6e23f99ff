import Foundation
import JSMContracts
import SwiftProtobuf
import Testing

/// A newer producer may add fields (the versioning rule allows it within a major
/// version). An older worker that re-publishes such a message must not strip them.
@Suite("Unknown fields from a newer schema")
struct UnknownFieldTests {
    /// Fields numbered where no v1 message has one: a varint and a length-delimited one.
    let futureFields = Wire.varintField(16, 300) + Wire.bytesField(99, Array("from v1.9".utf8))

    @Test("unknown top-level fields survive decode then encode byte for byte")
    func topLevelUnknownFields() throws {
        let known: [UInt8] = try Fixture.identityBatch(count: 3).serializedBytes()
        let incoming = known + futureFields

        let decoded = try JSMIdentityBatch(serializedBytes: incoming)
        #expect(decoded.unknownFields.data == Data(futureFields))
        #expect(decoded.identities.count == 3)

        let republished: [UInt8] = try decoded.serializedBytes()
        #expect(republished == incoming)
    }

    @Test("unknown fields inside a nested identity survive a change to a known field")
    func nestedUnknownFieldsAfterMutation() throws {
        var identityBytes: [UInt8] = try Fixture.identity(1).serializedBytes()
        identityBytes += Wire.bytesField(12, Array("future fact".utf8))
        let header: [UInt8] = try JSMMessageHeader(migrationID: "m", batchID: "b").serializedBytes()
        let incoming = Wire.bytesField(1, header) + Wire.bytesField(6, identityBytes)

        var decoded = try JSMIdentityBatch(serializedBytes: incoming)
        #expect(decoded.identities.count == 1)
        #expect(decoded.identities[0].unknownFields.data == Data(Wire.bytesField(12, Array("future fact".utf8))))

        decoded.targetSiteID = "site-1"
        let republished: [UInt8] = try decoded.serializedBytes()
        let again = try JSMIdentityBatch(serializedBytes: republished)
        #expect(again.targetSiteID == "site-1")
        #expect(again.identities[0].unknownFields.data == decoded.identities[0].unknownFields.data)
        #expect(again.identities[0].userKey == Fixture.identity(1).userKey)
    }

    @Test("an enum value added later decodes as UNRECOGNIZED and re-encodes unchanged")
    func unknownEnumValue() throws {
        // IdentityResult.outcome (field 2) = 9, a value v1 does not define.
        let incoming = Wire.bytesField(1, Array("JIRAUSER1".utf8)) + Wire.varintField(2, 9)
        let decoded = try JSMIdentityResult(serializedBytes: incoming)
        #expect(decoded.outcome == .UNRECOGNIZED(9))
        let republished: [UInt8] = try decoded.serializedBytes()
        #expect(republished == incoming)
    }
}

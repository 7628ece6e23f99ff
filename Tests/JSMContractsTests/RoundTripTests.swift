import JSMContracts
import SwiftProtobuf
import Testing

@Suite("Round trips through serialized bytes")
struct RoundTripTests {
    @Test("a 500-identity batch keeps every field of every identity")
    func identityBatchOf500() throws {
        let batch = Fixture.identityBatch(count: 500)
        let bytes: [UInt8] = try batch.serializedBytes()
        let decoded = try JSMIdentityBatch(serializedBytes: bytes)

        #expect(decoded == batch)
        #expect(decoded.identities.count == 500)
        #expect(decoded.header.schemaVersion == SchemaVersion.current)
        #expect(decoded.header.migrationID == Fixture.migrationID)
        #expect(decoded.header.batchID == "identities-0042")
        #expect(decoded.options == Fixture.options)
        #expect(decoded.targetSiteID == "site-7f3c")
        #expect(decoded.batchSequence == 42)
        #expect(decoded.batchCount == 2000)
        for (got, sent) in zip(decoded.identities, batch.identities) {
            #expect(got.userKey == sent.userKey)
            #expect(got.userName == sent.userName)
            #expect(got.displayName == sent.displayName)
            #expect(got.email == sent.email)
            #expect(got.normalizedEmail == sent.normalizedEmail)
            #expect(got.kind == sent.kind)
            #expect(got.directoryID == sent.directoryID)
            #expect(got.directoryPosition == sent.directoryPosition)
            #expect(got.disabled == sent.disabled)
        }
        // The fixture must exercise every kind and both values of the flag, or the
        // loop above proves less than it claims.
        #expect(Set(decoded.identities.map(\.kind)) == [.customer, .licensedUser, .deleted, .inactiveDirectory])
        #expect(decoded.identities.contains { $0.disabled })
        #expect(decoded.identities.contains { $0.normalizedEmail.isEmpty })
        // Order by normalised email survives, so a worker sees duplicates side by side.
        let emails = decoded.identities.map(\.normalizedEmail)
        #expect(emails == emails.sorted())
    }

    @Test("a 500-identity batch stays in the tens of kilobytes")
    func identityBatchSize() throws {
        let bytes: [UInt8] = try Fixture.identityBatch(count: 500).serializedBytes()
        #expect(bytes.count > 20_000)
        #expect(bytes.count < 100_000)
    }

    @Test("every request and reply type keeps every field")
    func everyMessageType() throws {
        try expectRoundTrip(Fixture.batchResult())
        try expectRoundTrip(Fixture.projectScope())
        try expectRoundTrip(Fixture.projectResult())
        try expectRoundTrip(Fixture.groupBatch())
        try expectRoundTrip(Fixture.groupBatchResult())
        try expectRoundTrip(Fixture.membershipBatch())
        try expectRoundTrip(Fixture.membershipBatchResult())
    }

    @Test("a batch result keeps flags, reasons and the merge primary")
    func batchResultDetails() throws {
        let bytes: [UInt8] = try Fixture.batchResult().serializedBytes()
        let decoded = try JSMBatchResult(serializedBytes: bytes)
        #expect(decoded.results.map(\.outcome) == [.linked, .rejected])
        #expect(decoded.results[0].flags == [.disabled, .merged])
        #expect(decoded.results[0].primaryUserKey == "JIRAUSER10005")
        #expect(decoded.results[1].rejectionReason == .missingEmail)
        #expect(decoded.results[1].accountType == .unspecified)
        #expect(decoded.formers.alreadyMigrated == 35)
        #expect(decoded.attempt == 3)
        #expect(decoded.replayed)
    }

    @Test("an empty message decodes to all defaults, whose enums are UNSPECIFIED")
    func zeroValues() throws {
        let options = try JSMMigrationOptions(serializedBytes: [UInt8]())
        #expect(options.users == .unspecified)
        #expect(options.customers == .unspecified)
        #expect(options.invalidEmail == .unspecified)
        #expect(options.duplicateEmail == .unspecified)
        let identity = try JSMIdentity(serializedBytes: [UInt8]())
        #expect(identity.kind == .unspecified)
        #expect(identity.disabled == false)
        let header = try JSMMessageHeader(serializedBytes: [UInt8]())
        #expect(SchemaVersion.isSupported(Int64(header.schemaVersion)) == false)
    }

    private func expectRoundTrip<M: SwiftProtobuf.Message & Equatable>(
        _ message: M,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let bytes: [UInt8] = try message.serializedBytes()
        let decoded = try M(serializedBytes: bytes)
        #expect(decoded == message, "\(M.protoMessageName)", sourceLocation: sourceLocation)
        // Every field is set, so no populated message may encode to nothing.
        #expect(!bytes.isEmpty, sourceLocation: sourceLocation)
        #expect(message != M(), sourceLocation: sourceLocation)
    }
}

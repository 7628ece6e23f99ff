import Foundation
import JSMDomain
import Testing

@testable import JSMPipeline

/// The dry run's scratch files and planning bucket by bucket: pure logic over a temporary
/// directory, no source, site or ledger.
@Suite("Dry run scratch buckets")
struct DryRunPlanTests {
    /// 640 identities: 600 over 150 addresses written in several cases and paddings (so most
    /// addresses are shared), a few invalid addresses, 40 without one, some formers, some inactive,
    /// some without a directory.
    static let identities: [ServerIdentity] = (0..<640).map { index in
        let email: String?
        switch index {
        case 600...: email = nil
        case _ where index % 97 == 0: email = "not-an-address-\(index)"
        case _ where index % 3 == 0: email = " User\(index % 150)@Example.COM "
        default: email = "user\(index % 150)@example.com"
        }
        let kind: IdentityKind =
            index % 11 == 0
            ? .deleted : index % 13 == 0 ? .inactiveDirectory : index % 5 == 0 ? .licensedUser : .customer
        return ServerIdentity(
            userKey: String(format: "key-%04d", (index * 7919) % 640), userName: "user-\(index)",
            displayName: index % 7 == 0 ? "Ünïcødé \(index) 🚀" : "User \(index)", rawEmail: email,
            directoryId: index % 19 == 0 ? nil : 1 + Int64(index % 2),
            directoryPosition: index % 19 == 0 ? nil : index % 2,
            isActive: index % 17 != 0, kind: kind)
    }

    /// Every fourth identity an earlier migration mapped.
    static let prior: [String: PriorMapping] = Dictionary(
        uniqueKeysWithValues: identities.enumerated().filter { $0.offset % 4 == 0 }.map {
            ($0.element.userKey, PriorMapping(accountId: "acc-\($0.offset)", accountType: .customer))
        })

    /// Writes `identities` to a spill of `buckets` files, runs `body`, and removes the files.
    func withSpill<T>(
        buckets: Int, claims: (inout ScopeSpill) throws -> Void, _ body: (ScopeSpill) throws -> T
    ) throws -> T {
        var spill = try ScopeSpill(bucketCount: buckets)
        defer { spill.removeFiles() }
        try claims(&spill)
        try spill.flushAll()
        return try body(spill)
    }

    @Test("records read back exactly; a key claimed twice keeps its first category and every project")
    func recordsRoundTrip() throws {
        let read = try withSpill(buckets: 5) { spill in
            for (index, identity) in Self.identities.enumerated() {
                try spill.append(identity, as: index % 2 == 0 ? .customer : .licensedUser, projectId: 10)
            }
            for identity in Self.identities.prefix(100) {
                try spill.append(identity, as: .former, projectId: 20)
                try spill.append(identity, as: .former, projectId: nil)
            }
        } _: { spill in
            try (0..<spill.bucketCount).flatMap { try spill.identities(inBucket: $0) }
        }
        #expect(read.count == Self.identities.count)
        let byKey = Dictionary(uniqueKeysWithValues: read.map { ($0.identity.userKey, $0) })
        for (index, identity) in Self.identities.enumerated() {
            let entry = try #require(byKey[identity.userKey])
            #expect(entry.identity == identity)
            #expect(entry.category == (index % 2 == 0 ? .customer : .licensedUser))
            #expect(entry.projects == (index < 100 ? [10, 20] : [10]))
        }
    }

    @Test("every identity of an email is in one bucket, each bucket in key order, the same buckets every time")
    func bucketsKeepEmailsTogether() throws {
        let buckets = try withSpill(buckets: 20) { spill in
            for identity in Self.identities { try spill.append(identity, as: .customer, projectId: nil) }
        } _: { spill in
            try (0..<spill.bucketCount).map { try spill.identities(inBucket: $0).map(\.identity) }
        }
        #expect(buckets.filter { !$0.isEmpty }.count > 10, "the identities should spread over many buckets")
        #expect(buckets.allSatisfy { $0.map(\.userKey) == $0.map(\.userKey).sorted() })
        var bucketOfEmail: [NormalizedEmail: Int] = [:]
        var shared = 0
        for (number, bucket) in buckets.enumerated() {
            for identity in bucket {
                guard let email = identity.email else { continue }
                if let earlier = bucketOfEmail.updateValue(number, forKey: email) {
                    shared += 1
                    #expect(earlier == number, "\(email) is in buckets \(earlier) and \(number)")
                }
            }
        }
        #expect(shared > 300, "most addresses should be shared by several identities")
        #expect(
            Self.identities.allSatisfy { ScopeSpill.bucket(of: $0, among: 20) == ScopeSpill.bucket(of: $0, among: 20) })
    }

    @Test("only scratch directories no live dry run holds are removed as abandoned")
    func abandonedDirectories() throws {
        let parent = FileManager.default.temporaryDirectory.appendingPathComponent("abandoned-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: parent) }
        var live = try ScopeSpill(bucketCount: 2, parent: parent)
        defer { live.removeFiles() }
        try live.append(Self.identities[0], as: .customer, projectId: nil)
        try live.flushAll()
        // What a killed dry run leaves: its files and an owner lock the kernel released.
        func leftover(_ name: String, lock: Bool) throws -> URL {
            let directory = parent.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data([1, 2, 3]).write(to: directory.appendingPathComponent("bucket-0.bin"))
            if lock { try Data().write(to: directory.appendingPathComponent(ScopeSpill.ownerLockName)) }
            return directory
        }
        let killed = try leftover(ScopeSpill.directoryPrefix + "killed", lock: true)
        let withoutLock = try leftover(ScopeSpill.directoryPrefix + "without-lock", lock: false)
        let otherName = try leftover("not-a-dry-run", lock: true)
        #expect(ScopeSpill.removeAbandoned(in: parent).map(\.lastPathComponent) == [killed.lastPathComponent])
        #expect(!FileManager.default.fileExists(atPath: killed.path))
        for kept in [live.directory, withoutLock, otherName] {
            #expect(FileManager.default.fileExists(atPath: kept.path), "\(kept.lastPathComponent) should be kept")
        }
        #expect(try live.identities(inBucket: ScopeSpill.bucket(of: Self.identities[0], among: 2)).count == 1)
        // Nothing hidden is left from building the live directory under its temporary name.
        let names = try FileManager.default.contentsOfDirectory(atPath: parent.path).sorted()
        #expect(
            names
                == [live.directory.lastPathComponent, withoutLock.lastPathComponent, otherName.lastPathComponent]
                .sorted())
        live.removeFiles()
        #expect(!FileManager.default.fileExists(atPath: live.directory.path))
        #expect(ScopeSpill.removeAbandoned(in: parent).isEmpty)
    }

    @Test("a damaged scratch file is an error naming it, not a shorter scope")
    func damagedFile() throws {
        try withSpill(buckets: 1) { spill in
            for identity in Self.identities.prefix(3) { try spill.append(identity, as: .customer, projectId: nil) }
        } _: { spill in
            let file = spill.directory.appendingPathComponent("bucket-0.bin")
            let bytes = try Data(contentsOf: file)
            try bytes.dropLast(5).write(to: file)
            #expect(throws: PipelineError.self) { try spill.identities(inBucket: 0) }
            do {
                _ = try spill.identities(inBucket: 0)
            } catch {
                #expect("\(error)".contains(file.path))
            }
        }
    }

    @Test(
        "planning bucket by bucket decides exactly what planning the whole scope decides",
        arguments: [MigrationPolicies(), MigrationPolicies(invalidEmail: .former, duplicateEmail: .block)])
    func bucketsPlanLikeTheWhole(policies: MigrationPolicies) throws {
        let ordered = Self.identities.sorted { $0.userKey < $1.userKey }
        let whole = BatchPlan(identities: ordered, priorMappings: Self.prior, policies: policies)
        let (settled, pending) = try withSpill(buckets: 20) { spill in
            for identity in Self.identities { try spill.append(identity, as: .customer, projectId: nil) }
        } _: { spill in
            var settled: [IdentityDecision] = []
            var pending: [EmailGroupPlan] = []
            for bucket in 0..<spill.bucketCount {
                let plan = BatchPlan(
                    identities: try spill.identities(inBucket: bucket).map(\.identity), priorMappings: Self.prior,
                    policies: policies)
                settled += plan.settled
                pending += plan.pending
            }
            return (settled, pending)
        }
        #expect(settled.count == whole.settled.count)
        #expect(Set(settled) == Set(whole.settled))
        #expect(pending.count == whole.pending.count)
        #expect(Set(pending) == Set(whole.pending))
        if policies.duplicateEmail == .merge {
            #expect(whole.pending.contains { !$0.followers.isEmpty }, "some pending email should have followers")
        }
    }
}

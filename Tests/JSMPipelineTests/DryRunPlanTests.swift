import JSMDomain
import Testing

@testable import JSMPipeline

/// The dry run plans its scope in pieces: pure logic, no source, site or ledger.
@Suite("Dry run planning in pieces")
struct DryRunPlanTests {
    /// 640 identities: 600 over 150 addresses written in several cases and paddings (so most
    /// addresses are shared), a few invalid addresses, 40 without one, and some formers.
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
            displayName: "User \(index)", rawEmail: email, directoryId: 1 + Int64(index % 2),
            directoryPosition: index % 2, isActive: index % 17 != 0, kind: kind)
    }

    /// Every fourth identity an earlier migration mapped.
    static let prior: [String: PriorMapping] = Dictionary(
        uniqueKeysWithValues: identities.enumerated().filter { $0.offset % 4 == 0 }.map {
            ($0.element.userKey, PriorMapping(accountId: "acc-\($0.offset)", accountType: .customer))
        })

    @Test("pieces hold every identity once, every identity of an email in one piece, each piece in key order")
    func piecesKeepEmailsTogether() {
        let pieces = MigrationDryRun.emailChunks(of: Self.identities, size: 32)
        #expect(pieces.count > 10, "the identities should be cut into many pieces")
        let keys = pieces.flatMap { $0 }
        #expect(keys.count == Self.identities.count)
        #expect(Set(keys) == Set(Self.identities.map(\.userKey)))
        #expect(pieces.allSatisfy { $0 == $0.sorted() })
        let byKey = Dictionary(uniqueKeysWithValues: Self.identities.map { ($0.userKey, $0) })
        var pieceOfEmail: [NormalizedEmail: Int] = [:]
        var shared = 0
        for (number, piece) in pieces.enumerated() {
            for key in piece {
                guard let email = byKey[key]?.email else { continue }
                if let earlier = pieceOfEmail.updateValue(number, forKey: email) {
                    shared += 1
                    #expect(earlier == number, "\(email) is in pieces \(earlier) and \(number)")
                }
            }
        }
        #expect(shared > 300, "most addresses should be shared by several identities")
        #expect(MigrationDryRun.emailChunks(of: Self.identities, size: 32) == pieces, "the same pieces every time")
    }

    @Test(
        "planning piece by piece decides exactly what planning the whole scope decides",
        arguments: [
            MigrationPolicies(), MigrationPolicies(invalidEmail: .former, duplicateEmail: .block),
        ])
    func piecesPlanLikeTheWhole(policies: MigrationPolicies) {
        let ordered = Self.identities.sorted { $0.userKey < $1.userKey }
        let whole = BatchPlan(identities: ordered, priorMappings: Self.prior, policies: policies)
        let byKey = Dictionary(uniqueKeysWithValues: Self.identities.map { ($0.userKey, $0) })
        var settled: [IdentityDecision] = []
        var pending: [EmailGroupPlan] = []
        for piece in MigrationDryRun.emailChunks(of: Self.identities, size: 32) {
            let plan = BatchPlan(
                identities: piece.compactMap { byKey[$0] }, priorMappings: Self.prior, policies: policies)
            settled += plan.settled
            pending += plan.pending
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

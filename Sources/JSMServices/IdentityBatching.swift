import JSMContracts
import JSMDomain

/// Cuts a migration's identities into `MigrateIdentities` batches.
///
/// Ordered by normalised email (identities without a usable email sort first, by user key), and
/// never splitting one email across batches: every duplicate of an email meets its primary in
/// the same batch, so the primary is chosen the same way whatever the timing.
public enum IdentityBatching {
    /// The batches, numbered from 1, each with a header naming the migration and the batch.
    public static func batches(
        of identities: [ServerIdentity], size: Int, migrationID: String, options: JSMMigrationOptions = .init()
    ) -> [JSMIdentityBatch] {
        precondition(size > 0, "batch size must be positive")
        let ordered = identities.sorted { lhs, rhs in
            let left = lhs.email?.value ?? ""
            let right = rhs.email?.value ?? ""
            return left != right ? left < right : lhs.userKey < rhs.userKey
        }
        var cuts: [Range<Int>] = []
        var start = 0
        while start < ordered.count {
            var end = min(start + size, ordered.count)
            // Extend the batch to the end of the email it stops in.
            while end < ordered.count, let email = ordered[end].email, email == ordered[end - 1].email {
                end += 1
            }
            cuts.append(start..<end)
            start = end
        }
        return cuts.enumerated().map { index, range in
            var batch = JSMIdentityBatch()
            batch.header = JSMMessageHeader(migrationID: migrationID, batchID: "\(migrationID)/identities/\(index + 1)")
            batch.options = options
            batch.batchSequence = UInt32(index + 1)
            batch.batchCount = UInt32(cuts.count)
            batch.identities = ordered[range].map(JSMIdentity.init)
            return batch
        }
    }
}

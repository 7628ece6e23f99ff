import JSMCloud

extension CloudSiteError {
    /// Whether the site refused this one account, group or membership (400 invalid, 404 not
    /// found): the item is rejected and reported, the rest of the batch goes on. A refused token
    /// (401), a missing permission (403) or an answer the adapter does not understand is the
    /// operator's to fix, not the item's: the batch fails and is parked with the error instead of
    /// rejecting every identity in it.
    var refusesTheItem: Bool { code == .invalidRequest || code == .notFound }

    /// The longest site reason a rejected item keeps (a site may answer a whole HTML page).
    static let refusalReasonLimit = 300

    /// A rejected item's detail, as the ledger, the reply and the requires-attention export keep
    /// it: `site refused: invalid_request 400: <the site's reason>`. The reason is on one line,
    /// at most ``refusalReasonLimit`` characters, with email addresses masked (a site may quote
    /// the address it refuses, and reports name identities by user key only).
    var refusalDetail: String {
        let head = "site refused: \(code)" + (status.map { " \($0)" } ?? "")
        let words = message.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        guard !words.isEmpty else { return head }
        var reason = LogRedaction.text(words)
        if reason.count > Self.refusalReasonLimit { reason = String(reason.prefix(Self.refusalReasonLimit)) + "..." }
        return head + ": " + reason
    }
}

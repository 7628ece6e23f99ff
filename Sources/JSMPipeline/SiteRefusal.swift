import JSMCloud

extension CloudSiteError {
    /// Whether the site refused this one account, group or membership (400 invalid, 404 not
    /// found): the item is rejected and reported, the rest of the batch goes on. A refused token
    /// (401), a missing permission (403) or an answer the adapter does not understand is the
    /// operator's to fix, not the item's: the batch fails and is parked with the error instead of
    /// rejecting every identity in it.
    var refusesTheItem: Bool { code == .invalidRequest || code == .notFound }
}

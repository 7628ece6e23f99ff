/// One `publish` call: resumed once every message in it is confirmed, or with the first failure.
final class PublishBatch {
    private var remaining: Int
    private var failure: AMQPError?
    private let continuation: CheckedContinuation<Void, any Error>

    init(count: Int, continuation: CheckedContinuation<Void, any Error>) {
        remaining = count
        self.continuation = continuation
    }

    /// Records the fate of one message of the batch.
    func settle(_ error: AMQPError?) {
        if let error, failure == nil { failure = error }
        remaining -= 1
        guard remaining == 0 else { return }
        if let failure { continuation.resume(throwing: failure) } else { continuation.resume() }
    }
}

/// A message on its way: queued, or published and awaiting its confirm.
final class PendingPublish {
    let message: OutboundMessage
    let batch: PublishBatch
    /// Set when the broker returned the message as unroutable; its confirm follows.
    var returned: AMQPError?

    init(message: OutboundMessage, batch: PublishBatch) {
        self.message = message
        self.batch = batch
    }
}

/// The published messages awaiting a confirm, indexed by the channel's publish sequence number.
///
/// Sequence numbers start at 1 on a fresh confirm-mode channel and grow by one per publish, so
/// the window is an array with a moving start. Confirms may be `multiple` and may come out of order.
struct ConfirmWindow {
    private var entries: [PendingPublish?] = []
    private var head = 0
    /// Sequence number of `entries[head]`.
    private var headSequence: UInt64 = 1
    private var sequenceByMessageId: [String: UInt64] = [:]
    /// Messages awaiting a confirm.
    private(set) var count = 0

    /// Records a message about to be published and returns its sequence number.
    @discardableResult
    mutating func append(_ publish: PendingPublish) -> UInt64 {
        let sequence = headSequence + UInt64(entries.count - head)
        entries.append(publish)
        count += 1
        if publish.message.mandatory, let id = publish.message.properties.messageId {
            sequenceByMessageId[id] = sequence
        }
        return sequence
    }

    /// Removes and returns the messages a confirm covers.
    mutating func resolve(tag: UInt64, multiple: Bool) -> [PendingPublish] {
        guard tag >= headSequence else { return [] }
        let first = multiple ? headSequence : tag
        var resolved: [PendingPublish] = []
        var sequence = first
        while sequence <= tag {
            let index = head + Int(sequence - headSequence)
            guard index < entries.count else { break }
            if let publish = entries[index] {
                resolved.append(publish)
                entries[index] = nil
                count -= 1
                if let id = publish.message.properties.messageId { sequenceByMessageId[id] = nil }
            }
            sequence += 1
        }
        while head < entries.count, entries[head] == nil {
            head += 1
            headSequence += 1
        }
        if head > 4096, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return resolved
    }

    /// Marks the message with this id as returned; its confirm will then fail it.
    mutating func markReturned(messageId: String?, error: AMQPError) {
        guard let messageId, let sequence = sequenceByMessageId[messageId], sequence >= headSequence else { return }
        entries[head + Int(sequence - headSequence)]?.returned = error
    }

    /// Empties the window for a new channel and returns what was never confirmed, oldest first.
    mutating func reset() -> [PendingPublish] {
        let unconfirmed = entries[head...].compactMap { $0 }
        self = ConfirmWindow()
        return unconfirmed
    }
}

/// Deliveries of one consumer channel not yet acknowledged to the broker, so that a run of
/// acks becomes one `basic.ack` with `multiple` set.
struct AckTracker {
    private enum Settled { case ackNotSent, sent }
    private var tags: [UInt64] = []
    private var head = 0
    private var settled: [UInt64: Settled] = [:]
    private var acksToSend: [UInt64] = []

    /// A delivery arrived with this tag (tags grow on a channel).
    mutating func delivered(_ tag: UInt64) { tags.append(tag) }

    /// The application acked; the ack goes out with the next ``drain()``.
    mutating func acked(_ tag: UInt64) {
        guard settled[tag] == nil else { return }
        settled[tag] = .ackNotSent
        acksToSend.append(tag)
    }

    /// A nack or reject was sent for this tag.
    mutating func sent(_ tag: UInt64) { settled[tag] = .sent }

    /// Returns the tag to ack with `multiple` (covering every settled delivery up to it) and the
    /// acks that must go out one by one because an unsettled delivery precedes them.
    mutating func drain() -> (multipleUpTo: UInt64?, single: [UInt64]) {
        var upTo: UInt64?
        while head < tags.count, let state = settled[tags[head]] {
            if state == .ackNotSent { upTo = tags[head] }
            settled[tags[head]] = nil
            head += 1
        }
        var single: [UInt64] = []
        for tag in acksToSend where settled[tag] == .ackNotSent {
            settled[tag] = .sent
            single.append(tag)
        }
        acksToSend.removeAll(keepingCapacity: true)
        if head > 4096, head * 2 > tags.count {
            tags.removeFirst(head)
            head = 0
        }
        return (upTo, single)
    }
}

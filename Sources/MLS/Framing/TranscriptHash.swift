import MLSCodec

/// The confirmed and interim transcript hashes (RFC 9420 §8.2).
public enum TranscriptHash {
    /// confirmed_transcript_hash_[n] =
    ///     Hash(interim_transcript_hash_[n-1] || ConfirmedTranscriptHashInput_[n])
    /// where ConfirmedTranscriptHashInput = (wire_format, FramedContent, signature).
    public static func confirmed(
        _ provider: CipherSuiteProvider, interimBefore: [UInt8], commit: AuthenticatedContent
    ) throws(MLSError) -> [UInt8] {
        guard commit.content.contentType == .commit else {
            throw MLSError(.invalidContentType, "§8.2", "only a commit enters the transcript")
        }
        var writer = TLSWriter(capacity: interimBefore.count + 256)
        writer.writeRaw(interimBefore)
        commit.wireFormat.encode(to: &writer)
        commit.content.encode(to: &writer)
        writer.writeOpaque(commit.auth.signature)
        return provider.hash(writer.bytes)
    }

    /// interim_transcript_hash_[n] =
    ///     Hash(confirmed_transcript_hash_[n] || InterimTranscriptHashInput_[n])
    /// where InterimTranscriptHashInput = (confirmation_tag).
    public static func interim(_ provider: CipherSuiteProvider, confirmed: [UInt8], confirmationTag: [UInt8]) -> [UInt8] {
        var writer = TLSWriter(capacity: confirmed.count + confirmationTag.count + 4)
        writer.writeRaw(confirmed)
        writer.writeOpaque(confirmationTag)
        return provider.hash(writer.bytes)
    }
}

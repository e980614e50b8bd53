"""The body-cam link: a framed, versioned, CRC-checked byte protocol between body-cam
firmware and the vehicle gateway (PROTOCOL.md)."""

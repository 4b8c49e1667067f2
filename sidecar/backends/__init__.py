"""Key managers behind the proxy: the KeyManager interface and its drivers."""

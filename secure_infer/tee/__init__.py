"""TEE split inference: the first layers on the client, the rest in an attested enclave process."""

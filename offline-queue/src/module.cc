// Module offline-queue: placeholder translation unit until the module's sources land.

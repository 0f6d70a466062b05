// proxy-wasm filter with the AssemblyScript SDK (@solo-io/proxy-runtime 0.1.8):
// buffers the request body (StopIterationAndBuffer until end_of_stream),
// then replaces every occurrence of FROM with TO in it (configuration
// "FROM|TO") and passes the rewritten body on. The SDK has no binding for
// proxy_set_buffer_bytes, so the filter declares the import itself (the
// ABI's, as Envoy provides it); everything else is the unmodified SDK.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterDataStatusValues } from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";

@external("env", "proxy_set_buffer_bytes")
declare function proxy_set_buffer_bytes(typ: u32, start: u32, length: u32, data: usize,
                                        size: usize): u32;

class BodyRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Body(context_id, this);
  }
}

class Body extends Context {
  constructor(context_id: u32, root_context: BodyRoot) {
    super(context_id, root_context);
  }
  onRequestBody(body_buffer_length: usize, end_of_stream: bool): FilterDataStatusValues {
    if (!end_of_stream) {
      return FilterDataStatusValues.StopIterationAndBuffer;   // offered again, grown
    }
    const conf = this.root_context.getConfiguration();
    const bar = conf.indexOf("|");
    if (bar <= 0) {
      return FilterDataStatusValues.Continue;
    }
    const from = conf.substring(0, bar);
    const to = conf.substring(bar + 1);
    const body = String.UTF8.decode(get_buffer_bytes(BufferTypeValues.HttpRequestBody, 0,
                                                     body_buffer_length as u32));
    const out = String.UTF8.encode(body.replaceAll(from, to));
    // start 0, length = the whole body: replaces it
    proxy_set_buffer_bytes(BufferTypeValues.HttpRequestBody, 0, body_buffer_length as u32,
                           changetype<usize>(out), out.byteLength);
    return FilterDataStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new BodyRoot(context_id); }, "as_body");

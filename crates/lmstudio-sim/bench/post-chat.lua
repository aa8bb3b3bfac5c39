-- wrk script: a small non-streaming chat completion, the same for every request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"qwen2.5-7b-instruct","messages":[{"role":"user","content":"Say hello to the load balancer"}],"max_tokens":16}'

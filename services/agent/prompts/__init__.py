"""The harness's system prompts: `manager.md` for hm1nd, `agent.md` for every sub-agent.

Loaded by `services.agent.prompt`; `{{name}}` placeholders are filled in there.
"""

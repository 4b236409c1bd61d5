"""How S-VCO builds a conversation for a llava-hf processor's chat template, and the assistant mask transformers
computes from the template's generation ranges: shared by the fixture scripts of this folder."""


def svco_messages(system, turns, image):
    """s-vco/s-vco data_collator.py: an optional system message, the user message [text] + [image] (first turn
    only), the assistant message when there is an answer (None: a generation prompt follows)."""
    msgs = []
    if system:
        msgs.append({"role": "system", "content": [{"type": "text", "text": system}]})
    for k, (q, a) in enumerate(turns):
        content = [{"type": "text", "text": q}] + ([{"type": "image"}] if image and k == 0 else [])
        msgs.append({"role": "user", "content": content})
        if a is not None:
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": a}]})
    return msgs


def assistant_mask(enc, gen_idx):
    """return_assistant_tokens_mask: tokens char_to_token(start) .. char_to_token(end - 1) of each generation range
    (to the end when the range's last character has no token)."""
    ids = enc.input_ids
    mask = [0] * len(ids)
    for a, b in gen_idx:
        t0, t1 = enc.char_to_token(a), enc.char_to_token(b - 1)
        for t in range(t0, (t1 + 1) if t1 is not None else len(ids)):
            mask[t] = 1
    return mask

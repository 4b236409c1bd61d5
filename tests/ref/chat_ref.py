"""How S-VCO builds a conversation for a llava-hf processor's chat template, the assistant mask transformers
computes from the template's generation ranges, and llava-hf's LLaMA tokenizer rebuilt from tokenizer.model:
shared by the fixture scripts of this folder. Runs with transformers 4.45 (S-VCO's) as with 5.x."""
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

# llava-hf/llava-1.5-7b-hf chat_template.json (also in transformers tests/models/llava/test_processor_llava.py).
LLAVA_HF_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def merges_by_score(vocab, scores):
    """The BPE merges of a SentencePiece BPE model as transformers' legacy converter orders them (by the merged
    piece's score, highest first; ties by the parts' lengths, then ids): transformers 5's generate_merges(vocab,
    scores), written out here so that the scripts also run under transformers 4.45, which lacks it."""
    merges = []
    for merge, score in scores.items():
        local = [(merge[:i], merge[i:], score) for i in range(1, len(merge)) if merge[:i] in vocab and merge[i:] in vocab]
        merges.extend(sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]])))
    merges.sort(key=lambda v: (v[2], len(v[0]), len(v[1])), reverse=True)
    return [(a, b) for a, b, _ in merges]


def llava_hf_tokenizer(model_path, add_eos=False):
    """llava-hf/llava-1.5-7b-hf's tokenizer rebuilt from LLaMA's tokenizer.model (the hub files cannot be
    downloaded here): the legacy normalizer Prepend("▁") + Replace(" ", "▁") on every segment between added
    tokens, BPE with byte fallback, added tokens <unk> <s> </s> <image>=32000 <pad>=32001; BOS added, and EOS
    too with add_eos (as S-VCO's collator tokenizes training conversations)."""
    m = sp_pb2.ModelProto()
    with open(model_path, "rb") as f:
        m.ParseFromString(f.read())
    vocab = {p.piece: i for i, p in enumerate(m.pieces)}
    scores = {p.piece: p.score for p in m.pieces}
    tk = Tokenizer(BPE(vocab, merges_by_score(vocab, scores), unk_token="<unk>", fuse_unk=True, byte_fallback=True,
                       dropout=None))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    tk.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<unk>", "<s>", "</s>"]])
    tk.add_special_tokens([AddedToken("<image>", normalized=False, special=True),
                           AddedToken("<pad>", normalized=False, special=True)])
    single = "<s> $A </s>" if add_eos else "<s> $A"
    special = [("<s>", 1), ("</s>", 2)] if add_eos else [("<s>", 1)]
    tk.post_processor = processors.TemplateProcessing(single=single, special_tokens=special)
    t = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                pad_token="<pad>")
    t.chat_template = LLAVA_HF_CHAT_TEMPLATE
    assert t.convert_tokens_to_ids(["<image>", "<pad>"]) == [32000, 32001]
    # transformers tests/models/llava/test_processor_llava.py expects exactly these ids for this prompt
    want = [1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 5618, 338, 4318, 297, 445, 1967, 29973, 319, 1799,
            9047, 13566, 29901]
    got = t("USER: <image>\nWhat is shown in this image? ASSISTANT:", add_special_tokens=True).input_ids
    assert got[:len(want)] == want, (got, want)
    return t


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
